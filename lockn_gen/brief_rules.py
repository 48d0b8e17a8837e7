"""The rules backend of the Brief: every field of the chain's prompts derived from the brief's own words,
with no model, in English, German, French, Spanish, Japanese and Chinese; and what ACE-Step 1.5's encoder
node accepts (its keys, time signatures, languages, bpm range), which the rules and the repair of a model's
answer (lockn_gen/brief.py) both keep to. Plain Python: nothing here imports ComfyUI."""
from __future__ import annotations

import re
import unicodedata

# ---- what ACE-Step 1.5's encoder node accepts ------------------------------------------------------------
ROOTS = ["C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb", "B"]
KEYSCALES = [f"{r} {q}" for q in ("major", "minor") for r in ROOTS]
TIMESIGNATURES = ["2", "3", "4", "6"]
LANGUAGES = ['ar', 'az', 'bg', 'bn', 'ca', 'cs', 'da', 'de', 'el', 'en', 'es', 'fa', 'fi', 'fr', 'he', 'hi', 'hr',
             'ht', 'hu', 'id', 'is', 'it', 'ja', 'ko', 'la', 'lt', 'ms', 'ne', 'nl', 'no', 'pa', 'pl', 'pt', 'ro', 'ru',
             'sa', 'sk', 'sr', 'sv', 'sw', 'ta', 'te', 'th', 'tl', 'tr', 'uk', 'ur', 'vi', 'yue', 'zh', 'unknown']
BPM_MIN, BPM_MAX = 30, 300          # ACE-Step 1.5's documented range (its node takes 10-300)
INSTRUMENTAL = "[Instrumental]"
LIMITS = {"image_prompt": 1500, "tags": 400, "lyrics": 3000, "motion_prompt": 1500}

# ---- the rules: every field derived from the brief alone ----------------------------------------------------
# The rules read English, German, French, Spanish, Japanese and Chinese briefs. Everything they know is in
# the word tables below, one dict per language, each word mapped to its English meaning (tags are written
# in English, as ACE-Step's captions are). How a table word is found: English words as whole words; German,
# French and Spanish words of 5 letters or more as word starts ("langsam" finds "langsamer", "orchest"
# finds "orchestre"), shorter ones as whole words ("rap" must not find "rapide"); Japanese and Chinese words
# anywhere (no spaces), the longest first ("夜明け" before "夜"); German music words of 5 letters or more
# anywhere in a word too, for compounds ("Akustikgitarre", "Popballade").
RULE_LANGUAGES = ("en", "de", "fr", "es", "ja", "zh")

MUSIC_WORDS = {
    "lo-fi", "lofi", "jazz", "jazzy", "ambient", "piano", "guitar", "acoustic", "synth", "synthwave", "orchestral",
    "strings", "violin", "cello", "drums", "bass", "techno", "house", "edm", "hip-hop", "hiphop", "rap", "rock", "pop",
    "folk", "blues", "soul", "funk", "classical", "cinematic score", "score", "soundtrack", "music", "beat", "beats",
    "tempo", "bpm", "melody", "vocals", "vocal", "choir", "singing", "song", "lyrics", "instrumental", "chiptune",
    "8-bit", "trap", "dubstep", "reggae", "country", "metal", "punk", "disco", "waltz", "ballad", "orchestra",
    "saxophone", "sax", "trumpet", "flute", "harp", "organ", "electronic", "downtempo", "chillhop", "chill",
}
# music words -> the English tag they give ("" = a music word that is no tag of its own: "Musik", "テンポ")
MUSIC = {
    "en": {**{w: w for w in MUSIC_WORDS}, "waltzing": "waltz", "waltzes": "waltz", "jingle": "jingle",
           "time signature": "", "music": "", "tempo": "", "bpm": "", "song": "", "lyrics": ""},
    "de": {"musik": "", "lied": "", "gesang": "vocals", "klavier": "piano", "piano": "piano", "gitarre": "guitar",
           "akustik": "acoustic", "streicher": "strings", "geige": "violin", "violine": "violin", "cello": "cello",
           "schlagzeug": "drums", "trommel": "drums", "bass": "bass", "kontrabass": "double bass",
           "synthesizer": "synth", "orchester": "orchestral", "chor": "choir", "jazz": "jazz", "techno": "techno", "elektronisch": "electronic", "rock": "rock",
           "pop": "pop", "volksmusik": "folk", "blues": "blues", "soul": "soul", "funk": "funk", "klassik": "classical",
           "filmmusik": "cinematic score", "soundtrack": "soundtrack", "melodie": "melody", "ballade": "ballad",
           "saxophon": "saxophone", "trompete": "trumpet", "flöte": "flute", "harfe": "harp", "orgel": "organ",
           "akkordeon": "accordion", "schlager": "schlager", "tempo": "", "takt": "", "walzer": "waltz",
           "dreivierteltakt": "", "sechsachteltakt": "", "viervierteltakt": "", "zweivierteltakt": ""},
    "fr": {"musique": "", "chanson": "", "piano": "piano", "guitare": "guitar", "acoustique": "acoustic",
           "cordes": "strings", "violon": "violin", "violoncelle": "cello", "batterie": "drums", "basse": "bass",
           "synthé": "synth", "synthétiseur": "synth", "orchestr": "orchestral", "chœur": "choir", "chorale": "choir",
           "jazz": "jazz", "techno": "techno", "électro": "electronic", "rock": "rock", "pop": "pop", "folk": "folk",
           "blues": "blues", "soul": "soul", "funk": "funk", "bande originale": "soundtrack", "bande-son": "soundtrack",
           "mélodie": "melody", "rythme": "", "ballade": "ballad", "saxophone": "saxophone", "trompette": "trumpet",
           "flûte": "flute", "harpe": "harp", "orgue": "organ", "accordéon": "accordion", "tempo": "",
           "mesure": "", "valse": "waltz", "trois temps": ""},
    "es": {"música": "", "canción": "", "piano": "piano", "guitarra": "guitar", "acústic": "acoustic",
           "cuerdas": "strings", "violín": "violin", "violonchelo": "cello", "chelo": "cello", "batería": "drums",
           "tambores": "drums", "sintetizador": "synth", "orquest": "orchestral", "coro": "choir", "jazz": "jazz",
           "techno": "techno", "electrónic": "electronic", "rock": "rock", "pop": "pop", "folk": "folk",
           "blues": "blues", "soul": "soul", "funk": "funk", "flamenc": "flamenco", "bolero": "bolero",
           "cumbia": "cumbia", "reguetón": "reggaeton", "bossa nova": "bossa nova", "tango": "tango",
           "banda sonora": "soundtrack", "melodía": "melody", "ritmo": "", "balada": "ballad", "saxofón": "saxophone",
           "trompeta": "trumpet", "flauta": "flute", "arpa": "harp", "órgano": "organ", "acordeón": "accordion",
           "tempo": "", "compás": "", "vals": "waltz", "tres por cuatro": "", "seis por ocho": ""},
    "ja": {"音楽": "", "曲": "", "ジャズ": "jazz", "ピアノ": "piano", "ギター": "guitar", "アコースティック": "acoustic",
           "シンセ": "synth", "シンセウェーブ": "synthwave", "オーケストラ": "orchestral", "ストリングス": "strings",
           "弦楽": "strings", "バイオリン": "violin", "ヴァイオリン": "violin", "チェロ": "cello", "ドラム": "drums",
           "ベース": "bass", "テクノ": "techno", "ハウスミュージック": "house", "ヒップホップ": "hip-hop", "ロック": "rock",
           "ポップ": "pop", "シティポップ": "city pop", "フォークソング": "folk", "ブルース": "blues", "ファンク": "funk",
           "ローファイ": "lo-fi", "アンビエント": "ambient", "エレクトロ": "electronic", "サックス": "saxophone",
           "トランペット": "trumpet", "フルート": "flute", "ハープ": "harp", "オルガン": "organ", "ボーカル": "vocals",
           "歌声": "vocals", "合唱": "choir", "琴": "koto", "三味線": "shamisen", "尺八": "shakuhachi", "演歌": "enka",
           "バラード": "ballad", "ビート": "beat", "メロディ": "melody", "サウンドトラック": "soundtrack",
           "サントラ": "soundtrack", "映画音楽": "cinematic score", "チップチューン": "chiptune", "インスト": "instrumental",
           "テンポ": "", "拍子": "", "ワルツ": "waltz"},
    "zh": {"音乐": "", "歌曲": "", "爵士": "jazz", "钢琴": "piano", "吉他": "guitar", "原声": "acoustic",
           "合成器": "synth", "合成器浪潮": "synthwave", "管弦乐": "orchestral", "交响": "orchestral", "弦乐": "strings",
           "小提琴": "violin", "大提琴": "cello", "架子鼓": "drums", "鼓点": "drums", "贝斯": "bass", "电子乐": "electronic",
           "电子音乐": "electronic", "摇滚": "rock", "流行乐": "pop", "流行音乐": "pop", "民谣": "folk", "蓝调": "blues",
           "布鲁斯": "blues", "灵魂乐": "soul", "放克": "funk", "古典音乐": "classical", "古典乐": "classical",
           "低保真": "lo-fi", "氛围音乐": "ambient", "萨克斯": "saxophone", "小号": "trumpet", "长笛": "flute",
           "竖琴": "harp", "管风琴": "organ", "人声": "vocals", "合唱": "choir", "古筝": "guzheng", "二胡": "erhu",
           "笛子": "dizi", "琵琶": "pipa", "说唱": "rap", "嘻哈": "hip-hop", "抒情": "ballad", "配乐": "soundtrack",
           "电影配乐": "cinematic score", "旋律": "melody", "节奏": "", "节拍": "beat", "纯音乐": "instrumental",
           "拍子": "", "华尔兹": "waltz", "圆舞曲": "waltz"},
}
MOODS = {   # mood word -> (tags, bpm, key)
    "calm": ("calm, gentle", 78, "C major"), "peaceful": ("peaceful, soft", 76, "F major"),
    "serene": ("serene, airy", 74, "F major"), "relaxed": ("relaxed", 84, "G major"),
    "chill": ("chill, laid-back", 85, "D major"), "lo-fi": ("lo-fi, warm tape", 82, "F major"),
    "lofi": ("lo-fi, warm tape", 82, "F major"), "sad": ("melancholic, slow", 70, "A minor"),
    "melancholic": ("melancholic", 70, "D minor"), "melancholy": ("melancholic", 70, "D minor"),
    "dark": ("dark, brooding", 90, "C minor"), "eerie": ("eerie, tense", 80, "E minor"),
    "mysterious": ("mysterious", 88, "E minor"), "tense": ("tense, driving", 110, "E minor"),
    "epic": ("epic, orchestral, big drums", 120, "D minor"), "happy": ("happy, bright", 118, "G major"),
    "upbeat": ("upbeat, bright", 122, "C major"), "energetic": ("energetic, driving", 128, "E minor"),
    "dance": ("danceable, four on the floor", 124, "A minor"), "romantic": ("romantic, tender", 72, "Eb major"),
    "dreamy": ("dreamy, reverb-soaked", 80, "Db major"), "nostalgic": ("nostalgic, warm", 84, "F major"),
    "playful": ("playful, light", 112, "C major"), "triumphant": ("triumphant, brass", 116, "Bb major"),
    "cozy": ("cozy, warm", 80, "F major"), "dawn": ("morning light, soft", 80, "G major"),
    "night": ("nocturnal, soft", 76, "A minor"), "rain": ("rainy, soft", 74, "A minor"),
}
# mood words of each language -> the English mood above
MOOD_WORDS = {
    "en": {m: m for m in MOODS},
    "de": {"ruhig": "calm", "friedlich": "peaceful", "gelassen": "serene", "entspannt": "relaxed", "chillig": "chill",
           "traurig": "sad", "melanchol": "melancholic", "düster": "dark", "dunkel": "dark", "unheimlich": "eerie",
           "geheimnisvoll": "mysterious", "mysteriös": "mysterious", "angespannt": "tense", "episch": "epic",
           "fröhlich": "happy", "glücklich": "happy", "beschwingt": "upbeat", "energiegeladen": "energetic",
           "tanzbar": "dance", "romantisch": "romantic", "verträumt": "dreamy", "träumerisch": "dreamy",
           "nostalgisch": "nostalgic", "verspielt": "playful", "triumphal": "triumphant", "gemütlich": "cozy",
           "morgengrauen": "dawn", "morgendämmerung": "dawn", "sonnenaufgang": "dawn", "nacht": "night",
           "regen": "rain", "sanft": "calm"},
    "fr": {"calme": "calm", "paisible": "peaceful", "serein": "serene", "détendu": "relaxed", "triste": "sad",
           "mélancoli": "melancholic", "sombre": "dark", "inquiétant": "eerie", "mystérieu": "mysterious",
           "tendu": "tense", "épique": "epic", "joyeu": "happy", "heureu": "happy", "entraînant": "upbeat",
           "énergique": "energetic", "dansant": "dance", "romantique": "romantic", "rêveu": "dreamy",
           "nostalgique": "nostalgic", "ludique": "playful", "triomphal": "triumphant", "douillet": "cozy",
           "aube": "dawn", "nuit": "night", "pluie": "rain", "pluvieu": "rain", "doux": "calm", "douce": "calm"},
    "es": {"tranquil": "calm", "calmad": "calm", "pacífic": "peaceful", "seren": "serene", "relajad": "relaxed",
           "triste": "sad", "melancólic": "melancholic", "oscur": "dark", "sombrí": "dark", "inquietante": "eerie",
           "misterios": "mysterious", "tenso": "tense", "tensa": "tense", "épic": "epic", "alegre": "happy",
           "feliz": "happy", "animad": "upbeat", "enérgic": "energetic", "bailable": "dance", "romántic": "romantic",
           "soñador": "dreamy", "nostálgic": "nostalgic", "juguetón": "playful", "triunfal": "triumphant",
           "acogedor": "cozy", "amanecer": "dawn", "alba": "dawn", "noche": "night", "lluvi": "rain", "suave": "calm"},
    "ja": {"穏やか": "calm", "静か": "calm", "落ち着い": "calm", "平和": "peaceful", "安らか": "serene",
           "リラックス": "relaxed", "チル": "chill", "ローファイ": "lo-fi", "悲しい": "sad", "切ない": "melancholic",
           "物悲しい": "melancholic", "哀愁": "melancholic", "暗い": "dark", "ダーク": "dark", "不気味": "eerie",
           "神秘的": "mysterious", "ミステリアス": "mysterious", "緊張": "tense", "壮大": "epic", "エピック": "epic",
           "楽しい": "happy", "明るい": "happy", "元気": "upbeat", "エネルギッシュ": "energetic", "ダンス": "dance",
           "ロマンチック": "romantic", "幻想的": "dreamy", "夢のよう": "dreamy", "懐かしい": "nostalgic",
           "ノスタルジック": "nostalgic", "遊び心": "playful", "凱旋": "triumphant", "居心地": "cozy",
           "夜明け": "dawn", "朝焼け": "dawn", "夜": "night", "雨": "rain", "優しい": "calm"},
    "zh": {"平静": "calm", "安静": "calm", "宁静": "serene", "平和": "peaceful", "祥和": "peaceful", "放松": "relaxed",
           "轻松": "relaxed", "低保真": "lo-fi", "悲伤": "sad", "伤感": "melancholic", "忧郁": "melancholic",
           "惆怅": "melancholic", "黑暗": "dark", "阴暗": "dark", "诡异": "eerie", "神秘": "mysterious", "紧张": "tense",
           "史诗": "epic", "宏大": "epic", "快乐": "happy", "欢快": "happy", "开心": "happy", "明快": "upbeat",
           "活力": "energetic", "动感": "dance", "浪漫": "romantic", "梦幻": "dreamy", "怀旧": "nostalgic",
           "俏皮": "playful", "凯旋": "triumphant", "温馨": "cozy", "黎明": "dawn", "清晨": "dawn", "夜": "night",
           "雨": "rain", "温柔": "calm"},
}
# tempo feel: counts where the words speak of the music (a clause with a music word, or the word alone)
FEEL_BPM = {"slow": 70, "uptempo": 128, "fast": 140}
FEEL_WORDS = {
    "en": {"slow": "slow", "fast": "fast", "uptempo": "uptempo", "up-tempo": "uptempo"},
    "de": {"langsam": "slow", "gemächlich": "slow", "schnell": "fast", "flott": "uptempo"},
    "fr": {"lent": "slow", "lente": "slow", "rapide": "fast"},
    "es": {"lento": "slow", "lenta": "slow", "rápido": "fast", "rápida": "fast"},
    "ja": {"ゆっくり": "slow", "ゆったり": "slow", "スロー": "slow", "遅い": "slow", "速い": "fast",
           "アップテンポ": "uptempo"},
    "zh": {"慢": "slow", "舒缓": "slow", "快节奏": "fast", "快速": "fast"},
}
METRE_WORDS = {     # words that state the metre (a stated "3/4", "6/8" comes first)
    "en": {"waltz": "3", "waltzing": "3", "waltzes": "3", "triple time": "3", "triple meter": "3"},
    "de": {"walzer": "3", "dreivierteltakt": "3", "sechsachteltakt": "6", "viervierteltakt": "4",
           "zweivierteltakt": "2"},
    "fr": {"valse": "3", "trois temps": "3"},
    "es": {"vals": "3", "tres por cuatro": "3", "seis por ocho": "6"},
    "ja": {"ワルツ": "3", "三拍子": "3", "3拍子": "3", "四拍子": "4", "4拍子": "4", "二拍子": "2", "2拍子": "2"},
    "zh": {"华尔兹": "3", "圆舞曲": "3", "三拍子": "3", "四拍子": "4", "二拍子": "2"},
}
FRACTIONS = {"2/4": "2", "2/2": "2", "3/4": "3", "3/8": "3", "4/4": "4", "6/8": "6", "6/4": "6"}
# a stated tempo: the number before a unit ("120 bpm", "90 battements par minute"), or after a lead word
# ("tempo 100", "テンポ120", "每分钟120拍")
TEMPO_UNITS = {"en": ("bpm", "beats per minute", "beats a minute"),
               "de": ("schläge pro minute", "schlägen pro minute", "schlaege pro minute", "schläge in der minute"),
               "fr": ("battements par minute", "pulsations par minute"),
               "es": ("pulsaciones por minuto", "golpes por minuto", "latidos por minuto", "pulsos por minuto"),
               "ja": ("拍毎分",), "zh": ("拍每分钟",)}
TEMPO_LEADS = {"en": ("tempo", "bpm"), "de": ("tempo",), "fr": ("tempo",), "es": ("tempo",),
               "ja": ("テンポ", "毎分"), "zh": ("每分钟", "速度", "节拍", "节奏")}
# a stated duration: no field of its own (the chains fit the music to the clip); it is kept out of the
# image prompt and the tags
DURATION_UNITS = {"en": ("seconds", "second", "secs", "sec", "minutes", "minute", "mins", "min"),
                  "de": ("sekunden", "sekunde", "sek", "minuten", "minute", "min"),
                  "fr": ("secondes", "seconde", "minutes", "minute"),
                  "es": ("segundos", "segundo", "seg", "minutos", "minuto"),
                  "ja": ("秒間", "秒", "分間", "分"), "zh": ("秒钟", "秒", "分钟")}
# keys: note names and words per language -> ACE-Step's letters
KEY_ROOTS = {
    "de": {"c": "C", "cis": "C#", "des": "Db", "d": "D", "dis": "D#", "es": "Eb", "e": "E", "f": "F", "fis": "F#",
           "ges": "Gb", "g": "G", "gis": "G#", "as": "Ab", "a": "A", "ais": "A#", "b": "Bb", "h": "B"},
    "fr/es": {"do": "C", "ut": "C", "ré": "D", "re": "D", "mi": "E", "fa": "F", "sol": "G", "la": "A", "si": "B"},
    "ja": {"ハ": "C", "ニ": "D", "ホ": "E", "ヘ": "F", "ト": "G", "イ": "A", "ロ": "B"},
}
ACCIDENTALS = {"#": "#", "♯": "#", "sharp": "#", "dièse": "#", "diese": "#", "sostenido": "#", "嬰": "#", "升": "#",
               "b": "b", "♭": "b", "flat": "b", "bémol": "b", "bemol": "b", "変": "b", "降": "b"}
QUALITIES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor", "dur": "major", "moll": "minor",
             "majeur": "major", "mineur": "minor", "mayor": "major", "menor": "minor", "長調": "major",
             "短調": "minor", "メジャー": "major", "マイナー": "minor", "大调": "major", "小调": "minor",
             "大調": "major", "小調": "minor"}
# lyrics: after a label ("lyrics: ...", "paroles : ..."), or in quotes when the brief speaks of singing
LYRICS_LABELS = {"en": ("lyrics", "lyric"), "de": ("text", "liedtext", "songtext"), "fr": ("paroles", "texte"),
                 "es": ("letra", "letras"), "ja": ("歌詞",), "zh": ("歌词", "歌詞")}
SING_WORDS = {"en": ("sing", "sings", "singing", "sung", "vocal", "vocals", "lyric", "lyrics", "song", "singer"),
              "de": ("singt", "singen", "singend", "gesungen", "gesang", "sänger", "lied", "lieder"),
              "fr": ("chant", "chante", "chanter", "chantent", "chanson", "voix"),
              "es": ("canta", "cantan", "cantar", "cantando", "cantante", "canción", "voz"),
              "ja": ("歌", "ボーカル"), "zh": ("唱", "歌", "人声")}
# language detection of Latin-script text: small words and letters that only one of the languages has
STOPWORDS = {
    "en": set("the a an and with of in on at under over from into is are her his its while through to for by "
              "i you we my your our me it".split()),
    "de": set("der die das den dem des ein eine einer einem einen und mit in im auf bei unter über zu zum zur ist "
              "von vom aus nach ich du wir mein meine dein uns nicht sich wie als durch dur moll pro".split()),
    "fr": set("le la les un une des du au aux et avec dans sur sous est de qui en pour par je tu nous mon ma mes "
              "ton moi toi qu majeur mineur".split()),
    "es": set("el la los las un una unos unas y con en sobre bajo del al es de que por para yo tú mi mis tu me te "
              "nos se su sus como entre mayor menor".split()),
}
LETTERS = {"de": "äöüß", "fr": "àâçèéêëîïôœùûÿ", "es": "ñáéíóú¿¡"}
# what is left of a clause once a tempo, key, metre or duration is taken out of it
FILLERS = {"at", "in", "on", "of", "for", "with", "and", "a", "an", "the", "to", "long", "lasting", "key", "bei",
           "im", "mit", "und", "für", "auf", "von", "zu", "lang", "ein", "eine", "einem", "um", "à", "en", "de", "du",
           "avec", "et", "pour", "pendant", "le", "la", "un", "une", "con", "y", "por", "durante", "del", "al", "el",
           "una"}
PARTICLES = "のでにはがをとな的在用以为是"
# a music-only brief (nothing to see in it) gets a scene from its first mood, or a neutral one: the image
# model is never asked to draw "bpm" or "4/4"
SCENES = {
    "calm": "a still lake at dawn, mist over the water, a lone rowing boat",
    "peaceful": "a quiet meadow with wildflowers under a soft blue sky",
    "serene": "a misty mountain lake with a wooden pier, pale morning light",
    "relaxed": "a hammock between palm trees on an empty beach, late afternoon",
    "chill": "a cozy room at dusk, city lights through the window, a cat on the sill",
    "lo-fi": "a cozy desk by a rainy window at night, warm lamp light, plants and books",
    "lofi": "a cozy desk by a rainy window at night, warm lamp light, plants and books",
    "sad": "an empty bench in a rainy park, autumn leaves on the path",
    "melancholic": "a lone figure at a rain-streaked window, grey evening light",
    "melancholy": "a lone figure at a rain-streaked window, grey evening light",
    "dark": "a foggy forest at night, moonlight through bare trees",
    "eerie": "an abandoned house in fog, a single lit window",
    "mysterious": "a narrow stone alley at night, lanterns glowing in the mist",
    "tense": "storm clouds gathering over a dark city skyline",
    "epic": "a vast mountain range under towering storm clouds, rays of light",
    "happy": "a sunny meadow with kites in a bright blue sky",
    "upbeat": "a colourful city street on a sunny morning",
    "energetic": "a neon-lit city at night, light trails of traffic",
    "dance": "a crowded dance floor with coloured lights and haze",
    "romantic": "two silhouettes on a bridge at sunset, city lights on the river",
    "dreamy": "pastel clouds over a calm sea at twilight, soft glow",
    "nostalgic": "an old street at golden hour, faded film look",
    "playful": "a small fox playing in autumn leaves, bright colours",
    "triumphant": "a figure on a mountain summit at sunrise, arms raised",
    "cozy": "a cabin interior with a crackling fireplace and warm blankets",
    "dawn": "a quiet coastline at dawn, soft golden light",
    "night": "a quiet city street at night, warm street lamps",
    "rain": "a rainy street at night, reflections of lights on wet pavement",
}
DEFAULT_SCENE = "an abstract landscape of soft light and colour, gentle gradients"
DEFAULT_TAGS = "cinematic, ambient, soft piano, warm pads"
DEFAULT_BPM, DEFAULT_KEY, DEFAULT_TS = 90, "C major", "4"
_KEY_RE = re.compile(r"\b([A-Ga-g])\s*(#|♯|b|♭|sharp|flat)?\s*(major|minor|maj|min|m)\b", re.I)   # normalize_key

# -- the matchers built from the tables --
_LAT = "A-Za-zÀ-ÖØ-öø-ɏ"                       # Latin letters: a word's edge is where they stop
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HIRAGANA = re.compile(r"[\u3040-\u309f]")


def _alt(words, lang: str = "en", whole: bool = False, inside: bool = False) -> str:
    """One regex alternation of table words, the longest first, each found as the table comment says."""
    out = []
    for w in sorted(set(words), key=len, reverse=True):
        if _CJK.search(w) or (inside and len(w) > 4):
            out.append(re.escape(w))
        elif whole or lang == "en" or len(w) <= 4:
            out.append(rf"(?<![{_LAT}]){re.escape(w)}(?![{_LAT}])")
        else:
            out.append(rf"(?<![{_LAT}]){re.escape(w)}")
    return "|".join(out)


def _unit_alt(words) -> str:
    """Units after a number: Latin ones must end there ('min' is not 'minor')."""
    return "|".join(re.escape(w) if _CJK.search(w) else rf"{re.escape(w)}(?![{_LAT}])"
                    for w in sorted(set(words), key=len, reverse=True))


def _all(table: dict) -> list:
    return [w for words in table.values() for w in words]


_PREP = (rf"(?:(?<![{_LAT}])(?:in the key of|tonalité de|tonalidad de|in der tonart|at|in|im|à|a|en|bei|mit|con|"
         rf"auf|um|de|of|with|for|für|pendant|durante|lasting|about|around|etwa|environ)\s+)?")
_TEMPO_RE = re.compile(
    rf"{_PREP}(?P<n>\d{{2,3}})\s*-?\s*(?:{_unit_alt(_all(TEMPO_UNITS))})"
    rf"|{_PREP}(?:{_alt(_all(TEMPO_LEADS), whole=True)})\s*(?:[:=]|为|是|は)?\s*(?P<m>\d{{2,3}})"
    rf"(?:\s*(?:bpm(?![{_LAT}])|拍))?", re.I)
_FRACTION_RE = re.compile(
    rf"{_PREP}(?:(?<![\d/])(?P<a>\d{{1,2}})\s*/\s*(?P<b>\d{{1,2}})(?![\d/])|(?P<d>\d)分の(?P<u>\d))"
    rf"(?:\s*-?\s*(?:(?:time|takt)(?![{_LAT}])|拍子|拍号|拍))?", re.I)
_DURATION_RE = re.compile(rf"{_PREP}(?P<n>\d+(?:[.,]\d+)?)\s*-?\s*(?:{_unit_alt(_all(DURATION_UNITS))})"
                          rf"(?:\s+(?:long|lang)(?![{_LAT}]))?", re.I)
_ACC = "|".join(re.escape(a) for a in sorted(ACCIDENTALS, key=len, reverse=True) if not _CJK.search(a))
_KEY_FORMS = [   # (regex, which note names); each is one language family's way of naming a key
    (re.compile(rf"{_PREP}(?<![{_LAT}])(?P<root>{'|'.join(sorted(KEY_ROOTS['de'], key=len, reverse=True))})"
                rf"\s*-?\s*(?P<q>dur|moll)(?![{_LAT}])", re.I), "de"),
    (re.compile(rf"{_PREP}(?<![{_LAT}])(?P<root>do|ut|ré|re|mi|fa|sol|la|si)\s*(?P<acc>dièse|diese|sostenido|bémol|"
                rf"bemol|#|♯|♭|b)?\s+(?P<q>majeur|mineur|mayor|menor)(?![{_LAT}])", re.I), "fr/es"),
    (re.compile(r"(?P<acc>嬰|変)?(?P<root>[ハニホヘトイロ])(?P<q>長調|短調)"), "ja"),
    (re.compile(rf"{_PREP}(?P<acc0>升|降)?(?<![{_LAT}])(?P<root>[A-Ga-g])[\s-]*(?P<acc>{_ACC})?\s*-?\s*"
                rf"(?P<q>(?:major|minor|maj|min)(?![{_LAT}])|メジャー|マイナー|大调|小调|大調|小調)", re.I), "letter"),
    (re.compile(rf"{_PREP}(?<![{_LAT}])(?P<root>[A-G])(?P<acc>#|♯|b|♭)?m(?![{_LAT}\d])"), "chord"),   # "Am", "F#m"
]
_CJK_GAP = re.compile(r"(?<=[\u3040-\u30ff\u3400-\u9fff]) (?=[\u3040-\u30ff\u3400-\u9fff])")   # a quote taken out
_SPLIT_RE = re.compile(r"[,;\n、。!?]+|\.(?=\s|$)")
_QUOTE_RE = re.compile(r'"([^"]{2,})"|“([^”]{2,})”|„([^“”]{2,})[“”]|«\s*([^»]{2,}?)\s*»|「([^」]+)」|『([^』]+)』')
_TABLES = {name: {lang: (re.compile(_alt(table[lang], lang, inside=(name, lang) == ("music", "de")), re.I),
                        {k.lower(): v for k, v in table[lang].items()})
                  for lang in RULE_LANGUAGES}
           for name, table in (("music", MUSIC), ("mood", MOOD_WORDS), ("feel", FEEL_WORDS),
                               ("metre", METRE_WORDS), ("sing", {k: {w: w for w in v} for k, v in SING_WORDS.items()}))}
_LABEL_RES = {lang: re.compile(rf"(?:{_alt(words, whole=True)})\s*:\s*(?P<l>.+)$", re.I | re.S)
              for lang, words in LYRICS_LABELS.items()}
_SMALL_WORDS = set().union(*STOPWORDS.values())
_EN_WORDS = {w.lower() for t in (MUSIC, MOOD_WORDS, FEEL_WORDS, METRE_WORDS) for w in t["en"]}


def _find(names, text: str, langs) -> list[tuple[int, int, str]]:
    """(start, end, English meaning) of every word of the table(s) `names` in `text`, in the order they
    stand."""
    hits = []
    for name in (names,) if isinstance(names, str) else names:
        for lang in langs:
            rx, meaning = _TABLES[name][lang]
            hits += [(m.start(), m.end(), meaning[m.group(0).lower()]) for m in rx.finditer(text)]
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    out, end = [], -1
    for h in hits:                       # overlapping finds: the longest at a place wins
        if h[0] >= end:
            out.append(h)
            end = h[1]
    return out


def _whole_word(text: str, s: int, e: int) -> str:
    """The word a table word was found in ('orchestr' in 'orchestral')."""
    while s > 0 and re.match(rf"[{_LAT}\-]", text[s - 1]):
        s -= 1
    while e < len(text) and re.match(rf"[{_LAT}\-]", text[e]):
        e += 1
    return text[s:e]


def detect_language(text: str, fallback: str = "en") -> str:
    """'en', 'de', 'fr', 'es', 'ja' or 'zh'. Japanese has kana; Chinese has han characters without kana
    (unless the fallback, the brief's language, is Japanese). Latin-script text is scored by its small words,
    its letters (ä, ñ, è...) and the words of the tables that only that language has; no signal: the
    fallback (or 'en' when the fallback is Japanese or Chinese)."""
    if len(_CJK.findall(text)) >= 2 or (_CJK.search(text) and not re.search(rf"[{_LAT}]", text)):
        return "ja" if _KANA.search(text) or fallback == "ja" else "zh"
    low = text.lower()
    words = set(re.findall(rf"[{_LAT}]+", low))         # each word once: "la la la" is no French
    score = {lang: len(words & STOPWORDS[lang]) for lang in STOPWORDS}
    for lang, letters in LETTERS.items():
        score[lang] += sum(low.count(ch) for ch in letters)
        for name in ("music", "mood", "feel", "metre"):     # its own words, not English ones ("orchestral")
            score[lang] += len({_whole_word(low, s, e) for s, e, _ in _find(name, low, [lang])} - _EN_WORDS)
    best = max(score, key=lambda lang: score[lang])       # a tie: the first of en, de, fr, es
    if score[best] == 0:
        return fallback if fallback in STOPWORDS else "en"
    return best


def _take_lyrics(text: str, lang: str) -> tuple[list[str], str]:
    """(lyrics lines, the brief without them): the words after a lyrics label of English or the brief's
    language, else quoted words when the rest of the brief speaks of singing."""
    for lg in dict.fromkeys(("en", lang)):
        m = _LABEL_RES[lg].search(text)
        if m and m.group("l").strip():
            return [m.group("l").strip()], text[:m.start()]
    quotes = [next(g for g in m.groups() if g) for m in _QUOTE_RE.finditer(text)]
    rest = _QUOTE_RE.sub(" ", text)
    if quotes and _find("sing", rest, dict.fromkeys(("en", lang))):
        return [q.strip() for q in quotes], rest
    return [], text


def _read_key(m: re.Match, form: str, clause: str) -> str | None:
    g = m.groupdict()
    root = g["root"]
    if form == "letter" and root.islower() and not _CJK.search(g["q"]):
        # 'a major storm', 'am Strand': a lower-case letter is a key only after 'in' / 'en' ("in d minor")
        if not re.search(r"(?:^|\s)(?:in|en|im|key of)\s+$", clause[:m.start("root")], re.I):
            return None
    if form == "chord" and re.match(r"\s+[^\W\d_]", clause[m.end():]) and \
            not re.search(r"(?:^|\s)(?:in|en|key of)\s+$", clause[:m.start("root")], re.I):
        return None                                        # "Am Strand": a word follows, no "in" before
    letter = KEY_ROOTS[form][root.lower()] if form in KEY_ROOTS else root.upper()
    acc = ACCIDENTALS.get((g.get("acc") or g.get("acc0") or "").lower(), "")
    quality = "minor" if form == "chord" else QUALITIES[g["q"].lower()]
    cand = f"{letter}{acc} {quality}" if len(letter) == 1 else f"{letter} {quality}"
    return cand if cand in KEYSCALES else None


def _take_facts(clause: str, facts: dict) -> str:
    """Takes a stated tempo, metre, key and duration out of a clause (the first of each is kept in
    `facts`); returns what is left of it."""
    def take(rx, read, kind):
        nonlocal clause
        for m in reversed(list(rx.finditer(clause))):
            value = read(m)
            if value is None:
                continue
            if kind:
                facts.setdefault(kind, []).insert(0, value)
            clause = clause[:m.start()] + " " + clause[m.end():]
    before = clause
    take(_TEMPO_RE, lambda m: normalize_bpm(m.group("n") or m.group("m")), "bpm")
    take(_FRACTION_RE, lambda m: FRACTIONS.get(f"{m.group('a')}/{m.group('b')}" if m.group("a")
                                               else f"{m.group('u')}/{m.group('d')}"), "ts")
    for rx, form in _KEY_FORMS:
        take(rx, lambda m, form=form: _read_key(m, form, clause), "key")
    take(_DURATION_RE, lambda m: "duration", None)
    if clause == before:
        return _CJK_GAP.sub("", " ".join(clause.split()))
    words = " ".join(clause.split()).strip(" ,.:;-/").split(" ")
    while words and words[0].lower() in FILLERS:
        words.pop(0)
    while words and words[-1].lower() in FILLERS:
        words.pop()
    return _CJK_GAP.sub("", " ".join(words)).strip(" ,.:;-/" + PARTICLES)


def _content(clause: str, langs, tables=("mood", "feel")) -> tuple[int, int]:
    """(words of a clause that are none of these tables' words nor small words, words that are): Latin
    words without digits, han and katakana characters (hiragana is mostly grammar)."""
    rest, hits = clause, _find(tables, clause, langs)
    for s, e, _ in reversed(hits):
        rest = rest[:s] + " " + rest[e:]
    words = [w for w in re.findall(rf"[{_LAT}\d]+", rest.lower()) if w not in FILLERS and w not in _SMALL_WORDS
             and not re.search(r"\d", w)]
    return len(words) + len([c for c in rest if _CJK.match(c) and not _HIRAGANA.match(c) and c not in PARTICLES]), \
        len(hits)


def _mood_only(clause: str, langs) -> bool:
    """A clause of mood or tempo-feel words only ('calm', '静かな'): nothing to draw."""
    return _content(clause, langs)[0] == 0


def _parse(text: str) -> dict:
    """The brief read once: its language, lyrics, the clauses that show and the clauses that sound, and
    what it states of tempo, key and metre."""
    text = unicodedata.normalize("NFKC", text)        # full-width digits and punctuation: "：" -> ":", "１２０" -> "120"
    text = " ".join(text.split()) if "\n" not in text else text.strip()
    lyrics, rest = _take_lyrics(text, detect_language(text))
    facts = {}
    clauses = [c for c in (_take_facts(c.strip(), facts) for c in _SPLIT_RE.split(rest)) if c]
    # the language of what is left ("in Am" is no German), else of the whole brief ("120 Schläge pro Minute")
    lang = detect_language(", ".join(clauses), detect_language(rest if rest.strip() else text))
    langs = list(dict.fromkeys(("en", lang)))
    visual, music = [], []
    for c in clauses:
        feel_only = _find("feel", c, langs) and _mood_only(c, langs) and not _find("mood", c, langs)
        is_music = bool(_find(("music", "metre"), c, langs) or feel_only)
        (music if is_music else visual).append(c)
    return {"lang": lang, "langs": langs, "lyrics": lyrics, "rest": rest, "facts": facts,
            "visual": visual, "music": music,
            "moods": [m for m in MOODS if m in {h[2] for h in _find("mood", rest, langs)}]}


def _image(p: dict) -> str:
    langs = p["langs"]
    if any(not _mood_only(c, langs) for c in p["visual"]):
        return ", ".join(p["visual"])
    # every clause speaks of the music: one that shows at least as much as it plays ("a girl at a piano",
    # "a jazz band in a smoky club"; not "lo-fi beats to study to") is the picture, as written
    counts = [(c, *_content(c, langs, ("music", "mood", "feel", "metre"))) for c in p["music"]]
    shown = [c for c, seen, heard in counts if seen >= max(heard, 1)]
    if shown:
        return ", ".join(shown)
    # music only: a scene from the first mood, else a neutral one; never the music words, tempo, key or metre
    return SCENES.get(p["moods"][0], DEFAULT_SCENE) if p["moods"] else DEFAULT_SCENE


def _tag_words(clause: str, langs) -> bool:
    """An English music clause worth a tag: more than 'music', 'tempo' or small words."""
    rest = clause
    for s, e, tag in reversed(_find("music", clause, langs)):
        if not tag:
            rest = rest[:s] + " " + rest[e:]
    return bool([w for w in re.findall(rf"[{_LAT}\d]+", rest.lower()) if w not in _SMALL_WORDS])


def normalize_key(value) -> str | None:
    """'Am' / 'a min' / 'F sharp minor' / 'Bb major' -> one of KEYSCALES, or None."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if v in KEYSCALES:
        return v
    m = re.fullmatch(r"\s*([A-Ga-g])\s*(#|♯|b|♭|sharp|flat)?\s*(major|minor|maj|min|m|)\s*", v, re.I)
    if not m:
        m = _KEY_RE.search(v)
        if not m:
            return None
    root = m.group(1).upper()
    acc = (m.group(2) or "").lower()
    acc = "#" if acc in ("#", "♯", "sharp") else "b" if acc in ("b", "♭", "flat") else ""
    q = (m.group(3) or "major")
    quality = "minor" if q.lower() in ("minor", "min") or q == "m" else "major"
    cand = f"{root}{acc} {quality}"
    return cand if cand in KEYSCALES else None


def normalize_timesignature(value) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and str(int(value)) in TIMESIGNATURES and value == int(value):
        return str(int(value))
    if isinstance(value, str):
        v = value.strip()
        if v in TIMESIGNATURES:
            return v
        m = re.fullmatch(r"(\d)\s*/\s*(\d)", v)
        if m:
            top = m.group(1)
            return {"6": "6", "3": "3", "2": "2", "4": "4"}.get(top)
    return None


def normalize_bpm(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        n = round(value)
    elif isinstance(value, str):
        m = re.search(r"\d+(?:\.\d+)?", value)
        if not m:
            return None
        n = round(float(m.group(0)))
    else:
        return None
    return n if BPM_MIN <= n <= BPM_MAX else None




def rules(text: str) -> dict:
    """Every field from the brief's own words, in English, German, French, Spanish, Japanese or Chinese.
    Lyrics first: the words after 'lyrics:' ('Text:', 'paroles :', 'letra:', '歌詞：', '歌词：'), or quoted
    words when the brief speaks of singing; they go to the lyrics only, never to the tags or the picture.
    Then a stated tempo ('96 bpm', '120 Schläge pro Minute', 'テンポ120'), metre ('6/8', 'waltz', 'Walzer',
    '三拍子'), key ('in D minor', 'd-Moll', 'ré mineur', 'ニ短調', 'D小调') and duration ('30 seconds') are
    taken out of the clauses; each wins over what the moods suggest (the duration has no field: the chains
    fit the music to the clip). What is left splits into clauses (',', ';', '、', '。'): the ones with music
    words make the tags (English briefs: as written; the others: the English tag of each word), the rest
    the image prompt; a brief with nothing to see gets a scene from its mood.
    `language` is the lyrics' language, as ACE-Step reads it; an instrumental piece gets the brief's
    language (the language the user writes in, and shown in the report as what the rules recognised)."""
    p = _parse(text)
    langs, facts = p["langs"], p["facts"]
    image = _image(p)[:LIMITS["image_prompt"] - 80].rstrip(" ,")
    image_prompt = f"{image}, detailed, natural light, cinematic composition"
    if p["lang"] == "en":
        parts = [c for c in p["music"] if _tag_words(c, langs)]
    else:
        parts = [tag for c in p["music"] for _, _, tag in _find(("music", "feel"), c, langs) if tag]
    parts += [MOODS[m][0] for m in p["moods"]]
    seen, tags = set(), []
    for t in ", ".join(parts).split(","):
        t = t.strip()
        if t and t.lower() not in seen:
            seen.add(t.lower())
            tags.append(t)
    tags_s = ", ".join(tags)[:LIMITS["tags"]].rstrip(" ,") or DEFAULT_TAGS
    feel = [tag for c in p["music"] for _, _, tag in _find("feel", c, langs)]
    bpm = (facts.get("bpm") or [None])[0] or (FEEL_BPM[feel[0]] if feel else None) \
        or (MOODS[p["moods"][0]][1] if p["moods"] else DEFAULT_BPM)
    key = (facts.get("key") or [None])[0] or (MOODS[p["moods"][0]][2] if p["moods"] else DEFAULT_KEY)
    metre = _find("metre", p["rest"], langs)
    ts = (facts.get("ts") or [None])[0] or (metre[0][2] if metre else DEFAULT_TS)
    if p["lyrics"]:
        words = "\n".join(p["lyrics"])
        lyrics, language = "[verse]\n" + words[:LIMITS["lyrics"] - 10], detect_language(words, p["lang"])
    else:
        lyrics, language = INSTRUMENTAL, p["lang"]
    return {"image_prompt": image_prompt, "tags": tags_s, "lyrics": lyrics, "bpm": bpm, "keyscale": key,
            "timesignature": ts, "language": language}


def motion_rules(text: str, style: str) -> str:
    subject = _image(_parse(text))[:400].rstrip(" ,")
    if style == "ltx2":
        return (f"{subject}. The subject moves naturally and slowly as the light shifts; small secondary motion "
                "in the background. The camera stays still. Soft ambient sound of the scene plays throughout.")
    return (f"{subject}. The subject moves naturally and slowly, with gentle secondary motion in the background; "
            "slow camera push-in, steady framing.")
