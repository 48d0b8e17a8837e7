"""Test and demo tooling for LockN Gen: the tiny real-architecture model factory, the GGUF/K-quant
writer, the test-only ComfyUI patches, the ComfyUI harness and a fake Hugging Face hub.

Never imported by the product code (nodes/ and lockn_gen/).
"""
