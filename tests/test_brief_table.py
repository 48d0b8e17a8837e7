"""The rules backend of the Brief, table-driven: briefs in English, German, French, Spanish, Japanese and
Chinese, and every field the rules write for each (lockn_gen.brief.rules; no ComfyUI, no model).

Each row says what the image prompt and the tags must and must not contain, and the exact lyrics, bpm,
key, time signature and language. `bugs` names the faults of the rules before this table that the row
shows: "lyrics" (stated lyrics in the tags or the picture), "music-only" (a brief with nothing to see
became the image prompt, tempo and all), "language" (a brief not in English: language "en", its tempo,
key, metre or lyrics label not read).
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lockn_gen import brief as B

I = B.INSTRUMENTAL
SUFFIX = ", detailed, natural light, cinematic composition"
NEUTRAL = B.DEFAULT_SCENE


@dataclass
class Row:
    id: str
    brief: str
    img: tuple = ()           # the image prompt contains each
    img_not: tuple = ()       # ... and none of these (case-insensitive)
    tags: tuple = ()          # the tags contain each (case-insensitive)
    tags_not: tuple = ()
    lyrics: str = I           # exact
    bpm: int = 90
    key: str = "C major"
    ts: str = "4"
    lang: str = "en"
    bugs: tuple = ()


ROWS = [
    # ---- English ---------------------------------------------------------------------------------------------
    Row("en-readme", "a lighthouse keeper's cat at dawn, lo-fi, calm", img=("lighthouse keeper's cat at dawn",),
        img_not=("lo-fi",), tags=("lo-fi", "calm", "warm tape"), bpm=78, key="C major"),
    Row("en-explicit", "rainy neon street, synthwave at 104 bpm in F sharp minor, 6/8", img=("rainy neon street",),
        img_not=("synthwave", "104", "minor", "6/8"), tags=("synthwave",), tags_not=("104", "minor"),
        bpm=104, key="F# minor", ts="6"),
    Row("en-waltz", "a ballroom, a slow waltz", img=("a ballroom",), img_not=("waltz",), tags=("waltz",),
        bpm=70, ts="3"),
    Row("en-fox", "a red fox in deep snow, jazz piano, 100 bpm", img=("a red fox in deep snow",),
        img_not=("jazz", "piano", "100"), tags=("jazz piano",), tags_not=("100",), bpm=100),
    Row("en-sung-quote", 'a kid on a swing, a folk song where she sings "up we go, up we go"',
        img=("a kid on a swing",), img_not=("up we go",), tags=("folk",), tags_not=("up we go",),
        lyrics="[verse]\nup we go, up we go", bugs=("lyrics",)),
    Row("en-label", "a rainy window, melancholic piano ballad, lyrics: rain on the glass, I wait for you",
        img=("a rainy window",), img_not=("glass", "wait for you", "ballad"), tags=("piano ballad", "melancholic"),
        tags_not=("glass", "wait", "lyrics"), lyrics="[verse]\nrain on the glass, I wait for you", bpm=70,
        key="D minor", bugs=("lyrics",)),
    Row("en-sung-rooftop",
        'a girl on a rooftop at night, she sings "the city never sleeps", dreamy pop, 96 bpm in E minor',
        img=("a girl on a rooftop at night", "she sings"), img_not=("never sleeps", "96", "minor", "pop"),
        tags=("dreamy pop", "reverb-soaked", "nocturnal"), tags_not=("never sleeps", "96"),
        lyrics="[verse]\nthe city never sleeps", bpm=96, key="E minor", bugs=("lyrics",)),
    Row("en-label-multiline", "a cat in a window\nlyrics: la la la\nthe night is long", img=("a cat in a window",),
        img_not=("la la", "night is long"), tags=(B.DEFAULT_TAGS,), tags_not=("la la", "lyrics"),
        lyrics="[verse]\nla la la\nthe night is long", bugs=("lyrics",)),
    Row("en-blues-song-quote", 'an old man on a porch, a blues song that goes "home is where the river bends"',
        img=("an old man on a porch",), img_not=("river bends", "blues"), tags=("a blues song that goes",),
        tags_not=("river bends", "home is"), lyrics="[verse]\nhome is where the river bends", bugs=("lyrics",)),
    Row("en-label-piano", "a girl at a piano, piano ballad, lyrics: the snow falls softly", img=("a girl at a piano",),
        img_not=("snow", "ballad"), tags=("piano ballad",), tags_not=("snow", "lyrics"),
        lyrics="[verse]\nthe snow falls softly", bugs=("lyrics",)),
    Row("en-sung-reggae", 'street musicians at night, "dance with me tonight" sung over reggae drums',
        img=("street musicians at night",), img_not=("dance with me", "reggae"), tags=("reggae drums", "nocturnal"),
        tags_not=("dance with me", "danceable"), lyrics="[verse]\ndance with me tonight", bpm=76, key="A minor",
        bugs=("lyrics",)),
    Row("en-label-music-words", "a cat on a fence at night, lyrics: jazz is my song, piano",
        img=("a cat on a fence at night",), img_not=("jazz", "piano"), tags=("nocturnal",),
        tags_not=("jazz", "my song", "piano", "lyrics"), lyrics="[verse]\njazz is my song, piano", bpm=76,
        key="A minor", bugs=("lyrics",)),
    Row("en-sign-not-lyrics", 'a neon sign that reads "OPEN ALL NIGHT" above a diner, synthwave',
        img=('"OPEN ALL NIGHT"', "above a diner"), tags=("synthwave", "nocturnal"), bpm=76, key="A minor"),
    Row("en-music-only-lofi", "lo-fi hip-hop, 85 bpm, in the key of E minor", img=(B.SCENES["lo-fi"],),
        img_not=("hip-hop", "85", "bpm", "minor", "key"), tags=("lo-fi hip-hop", "warm tape"),
        tags_not=("85", "minor", "key of"), bpm=85, key="E minor", bugs=("music-only",)),
    Row("en-music-only-epic", "epic orchestral, 140 bpm, D minor, 4/4", img=(B.SCENES["epic"],),
        img_not=("orchestral", "140", "4/4", "minor"), tags=("epic orchestral", "big drums"),
        tags_not=("140", "4/4", "minor"), bpm=140, key="D minor", bugs=("music-only",)),
    Row("en-music-only-techno", "techno, 128 bpm", img=(NEUTRAL,), img_not=("techno", "128"), tags=("techno",),
        tags_not=("128",), bpm=128, bugs=("music-only",)),
    Row("en-music-only-slow", "slow jazz piano, 3/4", img=(NEUTRAL,), img_not=("jazz", "3/4", "slow"),
        tags=("slow jazz piano",), tags_not=("3/4",), bpm=70, ts="3", bugs=("music-only",)),
    Row("en-music-only-sad", "sad piano ballad in Am, 70 bpm, 2 minutes", img=(B.SCENES["sad"],),
        img_not=("piano", "ballad", "Am,", "minutes"), tags=("sad piano ballad", "melancholic"),
        tags_not=("minutes", "70", " am"), bpm=70, key="A minor", bugs=("music-only",)),
    Row("en-duration", "a lighthouse at dusk, ambient piano, 30 seconds", img=("a lighthouse at dusk",),
        img_not=("30", "seconds", "piano"), tags=("ambient piano",), tags_not=("30", "seconds")),
    Row("en-astronaut", "a lone astronaut on Mars, cinematic score, E flat major, 6/8, 45 seconds",
        img=("a lone astronaut on Mars",), img_not=("6/8", "45", "seconds", "flat", "score"),
        tags=("cinematic score",), tags_not=("45", "flat"), key="Eb major", ts="6"),
    Row("en-a-major-storm", "a major storm over the harbour, tense strings",
        img=("a major storm over the harbour",), img_not=("strings",), tags=("tense strings", "driving"),
        bpm=110, key="E minor"),
    Row("en-tempo-lead", "tempo 100, a cat asleep on a windowsill, soft piano", img=("a cat asleep on a windowsill",),
        img_not=("tempo", "100", "piano"), tags=("soft piano",), tags_not=("tempo", "100"), bpm=100),
    Row("en-fast", "a desert highway at noon, fast surf rock", img=("a desert highway at noon",),
        img_not=("rock",), tags=("fast surf rock",), bpm=140),
    Row("en-lower-key", "a foggy pier, ambient drones in d minor, 60 bpm", img=("a foggy pier",),
        img_not=("minor", "60"), tags=("ambient drones",), tags_not=("minor", "60"), bpm=60, key="D minor"),
    Row("en-image-only", "a red bicycle leaning on a blue door", img=("a red bicycle leaning on a blue door",),
        tags=(B.DEFAULT_TAGS,)),
    Row("en-cat-piano", "a cat playing piano", img=("a cat playing piano",), tags=("a cat playing piano",)),
    Row("en-french-lyrics", "a café terrace in Paris, accordion waltz, lyrics: je t'attends sous la pluie",
        img=("a café terrace in Paris",), img_not=("attends", "waltz"), tags=("accordion waltz",),
        tags_not=("attends", "pluie"), lyrics="[verse]\nje t'attends sous la pluie", ts="3", lang="fr",
        bugs=("lyrics", "language")),
    # ---- German ----------------------------------------------------------------------------------------------
    Row("de-harbour", "ein verregneter Hafen bei Nacht, langsamer Jazz mit Klavier, 80 Schläge pro Minute, in d-Moll",
        img=("ein verregneter Hafen bei Nacht",), img_not=("Schläge", "Moll", "Jazz", "Klavier", "80"),
        tags=("slow", "jazz", "piano", "nocturnal"), tags_not=("80", "Schläge", "Moll", "Klavier"), bpm=80,
        key="D minor", lang="de", bugs=("language",)),
    Row("de-waltz", "ein Ballsaal mit Kronleuchtern, ein Walzer für Streicher", img=("ein Ballsaal mit Kronleuchtern",),
        img_not=("Walzer", "Streicher"), tags=("waltz", "strings"), tags_not=("Walzer",), ts="3", lang="de",
        bugs=("language",)),
    Row("de-text-label", "eine alte Frau am Fenster, ein trauriges Lied, Text: Ich warte auf dich",
        img=("eine alte Frau am Fenster",), img_not=("warte", "Lied"), tags=("melancholic",),
        tags_not=("warte", "Text"), lyrics="[verse]\nIch warte auf dich", bpm=70, key="A minor", lang="de",
        bugs=("lyrics", "language")),
    Row("de-sung-quote",
        "ein Junge auf einem Steg, er singt „Sommer bleib bei mir“, Volksmusik im Dreivierteltakt, Es-Dur",
        img=("ein Junge auf einem Steg", "er singt"), img_not=("Sommer", "Volksmusik", "Dur"), tags=("folk",),
        tags_not=("Sommer", "Dur"), lyrics="[verse]\nSommer bleib bei mir", key="Eb major", ts="3", lang="de",
        bugs=("lyrics", "language")),
    Row("de-music-only-techno", "Techno mit Bass, 130 BPM, a-Moll, 3 Minuten", img=(NEUTRAL,),
        img_not=("Techno", "130", "Moll", "Minuten"), tags=("techno", "bass"), tags_not=("130", "Moll", "Minuten"),
        bpm=130, key="A minor", lang="de", bugs=("music-only", "language")),
    Row("de-music-only-lofi", "Lo-Fi, ruhig, 30 Sekunden", img=(B.SCENES["calm"],), img_not=("Lo-Fi", "Sekunden", "30"),
        tags=("lo-fi", "calm"), tags_not=("Sekunden", "30"), bpm=78, lang="de", bugs=("music-only", "language")),
    Row("de-am-strand", "Am Strand ein Hund im Wind, fröhliche Gitarre", img=("Am Strand ein Hund im Wind",),
        img_not=("Gitarre",), tags=("guitar", "happy"), bpm=118, key="G major", lang="de", bugs=("language",)),
    Row("de-storm", "ein Gewitter über dem Meer, epische Orchestermusik, Tempo 140, H-Moll, Sechsachteltakt",
        img=("ein Gewitter über dem Meer",), img_not=("Tempo", "140", "Moll", "Orchester"),
        tags=("orchestral", "epic"), tags_not=("140", "Moll", "Tempo"), bpm=140, key="B minor", ts="6", lang="de",
        bugs=("language",)),
    Row("de-fast-pop", "Kinder tanzen im Park, schneller Pop, B-Dur, 2/4", img=("Kinder tanzen im Park",),
        img_not=("Pop", "Dur", "2/4"), tags=("fast", "pop"), tags_not=("Dur", "2/4"), bpm=140, key="Bb major",
        ts="2", lang="de", bugs=("language",)),
    Row("de-compound", "ein Leuchtturm im Nebel, Akustikgitarre, Liedtext: Licht in der Nacht",
        img=("ein Leuchtturm im Nebel",), img_not=("gitarre", "Licht"), tags=("acoustic", "guitar"),
        tags_not=("Licht", "Nacht"), lyrics="[verse]\nLicht in der Nacht", lang="de", bugs=("lyrics", "language")),
    Row("de-english-lyrics", "ein Mädchen im Regen, Popballade, Text: stay with me tonight",
        img=("ein Mädchen im Regen",), img_not=("stay", "ballade"), tags=("ballad", "rainy"), tags_not=("stay",),
        lyrics="[verse]\nstay with me tonight", bpm=74, key="A minor", lang="en", bugs=("lyrics",)),
    Row("de-image-only", "ein roter Fuchs im tiefen Schnee bei Sonnenaufgang",
        img=("ein roter Fuchs im tiefen Schnee bei Sonnenaufgang",), tags=("morning light",), bpm=80,
        key="G major", lang="de", bugs=("language",)),
    # ---- French ----------------------------------------------------------------------------------------------
    Row("fr-lighthouse", "un phare sous la pluie, piano mélancolique, à 90 bpm, en ré mineur",
        img=("un phare sous la pluie",), img_not=("90", "mineur", "piano"), tags=("piano", "melancholic", "rainy"),
        tags_not=("90", "mineur", "ré"), bpm=90, key="D minor", lang="fr", bugs=("language",)),
    Row("fr-music-only-valse", "une valse lente pour violon et orchestre, la majeur", img=(NEUTRAL,),
        img_not=("valse", "violon", "majeur", "orchestre"), tags=("waltz", "slow", "violin", "orchestral"),
        tags_not=("majeur",), bpm=70, key="A major", ts="3", lang="fr", bugs=("music-only", "language")),
    Row("fr-paroles", "un café à Paris au matin, chanson douce, paroles : Je t'attends sous la pluie",
        img=("un café à Paris au matin",), img_not=("attends", "chanson", "paroles"), tags=("calm",),
        tags_not=("attends", "pluie", "rainy", "paroles"), lyrics="[verse]\nJe t'attends sous la pluie", bpm=78,
        lang="fr", bugs=("lyrics", "language")),
    Row("fr-sung-quote", "une femme chante « reste avec moi » dans une rue la nuit, accordéon, si bémol majeur, "
        "90 battements par minute", img=("une femme chante dans une rue la nuit",),
        img_not=("reste avec moi", "battements", "accordéon", "majeur"), tags=("accordion", "nocturnal"),
        tags_not=("reste", "battements", "90"), lyrics="[verse]\nreste avec moi", bpm=90, key="Bb major",
        lang="fr", bugs=("lyrics", "language")),
    Row("fr-music-only-electro", "musique électronique rapide, 6/8, mi bémol mineur, 2 minutes", img=(NEUTRAL,),
        img_not=("musique", "6/8", "mineur", "minutes"), tags=("electronic", "fast"), tags_not=("minutes", "6/8"),
        bpm=140, key="Eb minor", ts="6", lang="fr", bugs=("music-only", "language")),
    Row("fr-port", "un vieux port à l'aube, guitare acoustique, tempo 76, do majeur", img=("un vieux port à l'aube",),
        img_not=("guitare", "tempo", "76", "majeur"), tags=("guitar", "acoustic", "morning light"),
        tags_not=("76", "majeur"), bpm=76, key="C major", lang="fr", bugs=("language",)),
    Row("fr-image-only", "une forêt de bouleaux sous la neige", img=("une forêt de bouleaux sous la neige",),
        tags=(B.DEFAULT_TAGS,), lang="fr", bugs=("language",)),
    # ---- Spanish ---------------------------------------------------------------------------------------------
    Row("es-beach", "una playa al amanecer, guitarra flamenca, 100 pulsaciones por minuto, en re menor",
        img=("una playa al amanecer",), img_not=("pulsaciones", "menor", "guitarra", "100"),
        tags=("guitar", "flamenco", "morning light"), tags_not=("100", "menor"), bpm=100, key="D minor", lang="es",
        bugs=("language",)),
    Row("es-music-only-vals", "un vals para cuerdas, fa sostenido menor", img=(NEUTRAL,),
        img_not=("vals", "cuerdas", "sostenido"), tags=("waltz", "strings"), tags_not=("menor",), key="F# minor",
        ts="3", lang="es", bugs=("music-only", "language")),
    Row("es-sung-quote", "una niña canta «la luna me mira» en un balcón de noche, balada con piano",
        img=("una niña canta en un balcón de noche",), img_not=("luna", "balada", "piano"),
        tags=("ballad", "piano", "nocturnal"), tags_not=("luna", "mira"), lyrics="[verse]\nla luna me mira", bpm=76,
        key="A minor", lang="es", bugs=("lyrics", "language")),
    Row("es-letra", "un bar de tango en Buenos Aires, acordeón, letra: bajo la lluvia te espero",
        img=("un bar de tango en Buenos Aires",), img_not=("lluvia", "espero", "acordeón"), tags=("tango", "accordion"),
        tags_not=("lluvia", "espero", "rainy"), lyrics="[verse]\nbajo la lluvia te espero", lang="es",
        bugs=("lyrics", "language")),
    Row("es-music-only-reggaeton", "reguetón bailable, 95 bpm, la menor, 4/4, 3 minutos", img=(B.SCENES["dance"],),
        img_not=("reguetón", "95", "menor", "minutos", "4/4"), tags=("reggaeton", "danceable"),
        tags_not=("95", "minutos", "menor"), bpm=95, key="A minor", lang="es", bugs=("music-only", "language")),
    Row("es-street", "una calle tranquila de noche, piano lento, tempo 60, sol mayor, tres por cuatro",
        img=("una calle tranquila de noche",), img_not=("piano", "tempo", "60", "mayor", "cuatro"),
        tags=("piano", "slow", "calm", "nocturnal"), tags_not=("60", "mayor", "cuatro"), bpm=60, key="G major",
        ts="3", lang="es", bugs=("language",)),
    Row("es-music-only-rock", "rock enérgico, 150 bpm, mi menor", img=(B.SCENES["energetic"],),
        img_not=("rock", "150", "menor"), tags=("rock", "energetic"), tags_not=("150", "menor"), bpm=150,
        key="E minor", lang="es", bugs=("music-only", "language")),
    Row("es-image-only", "un gato dormido junto a la ventana, guitarra suave",
        img=("un gato dormido junto a la ventana",),
        img_not=("guitarra",), tags=("guitar", "calm"), bpm=78, lang="es", bugs=("language",)),
    # ---- Japanese --------------------------------------------------------------------------------------------
    Row("ja-tokyo", "雨の夜の東京、ジャズピアノ、テンポ120、ニ短調", img=("雨の夜の東京",),
        img_not=("ジャズ", "テンポ", "短調", "120"), tags=("jazz", "piano", "nocturnal", "rainy"),
        tags_not=("120", "テンポ", "短調"), bpm=120, key="D minor", lang="ja", bugs=("language",)),
    Row("ja-music-only-waltz", "ワルツ、ストリングス、ゆったり、変ロ長調", img=(NEUTRAL,),
        img_not=("ワルツ", "長調", "ストリングス"), tags=("waltz", "strings", "slow"), tags_not=("長調",), bpm=70,
        key="Bb major", ts="3", lang="ja", bugs=("music-only", "language")),
    Row("ja-label", "桜の下の少女、ローファイ、歌詞：春の風が吹いている", img=("桜の下の少女",),
        img_not=("春の風", "ローファイ", "歌詞"), tags=("lo-fi",), tags_not=("春の風", "歌詞"),
        lyrics="[verse]\n春の風が吹いている", bpm=82, key="F major", lang="ja", bugs=("lyrics", "language")),
    Row("ja-sung-quote", "少女が「また明日」と歌う夕暮れの教室、ピアノ、4分の3拍子、嬰ヘ短調、30秒",
        img=("夕暮れの教室",), img_not=("また明日", "30秒", "拍子", "ピアノ", "短調"), tags=("piano",),
        tags_not=("また明日", "30秒"), lyrics="[verse]\nまた明日", key="F# minor", ts="3", lang="ja",
        bugs=("lyrics", "language")),
    Row("ja-sea", "夜の海、120BPM、イ短調、8分の6拍子", img=("夜の海",), img_not=("120", "BPM", "短調", "拍子"),
        tags=("nocturnal",), tags_not=("120", "拍子"), bpm=120, key="A minor", ts="6", lang="ja",
        bugs=("language",)),
    Row("ja-music-only-fullwidth", "ジャズ、テンポ１２０、ハ長調", img=(NEUTRAL,), img_not=("ジャズ", "テンポ", "長調"),
        tags=("jazz",), tags_not=("120", "テンポ"), bpm=120, key="C major", lang="ja",
        bugs=("music-only", "language")),
    Row("ja-cat-piano", "猫がピアノを弾く", img=("猫がピアノを弾く",), tags=("piano",), lang="ja", bugs=("language",)),
    Row("ja-music-only-ballad", "悲しいバラード、ゆっくり、Aマイナー、3分", img=(B.SCENES["sad"],),
        img_not=("バラード", "マイナー", "3分"), tags=("ballad", "slow", "melancholic"), tags_not=("3分", "マイナー"),
        bpm=70, key="A minor", lang="ja", bugs=("music-only", "language")),
    Row("ja-english-lyrics", "東京の夜景、シティポップ、歌詞：I love you tonight", img=("東京の夜景",),
        img_not=("love", "ポップ"), tags=("city pop", "nocturnal"), tags_not=("love",),
        lyrics="[verse]\nI love you tonight", bpm=76, key="A minor", lang="en", bugs=("lyrics",)),
    Row("ja-vocal-quote", "ボーカル入りのバラード、『君に会いたい』、夕焼けの海", img=("夕焼けの海",),
        img_not=("君に会いたい", "バラード"), tags=("vocals", "ballad"), tags_not=("君に会いたい",),
        lyrics="[verse]\n君に会いたい", lang="ja", bugs=("lyrics", "language")),
    Row("ja-image-only", "京都の古い寺、紅葉", img=("京都の古い寺", "紅葉"), tags=(B.DEFAULT_TAGS,), lang="ja",
        bugs=("language",)),
    # ---- Chinese ---------------------------------------------------------------------------------------------
    Row("zh-shanghai", "雨夜的上海街头，慢节奏的爵士钢琴，每分钟90拍，D小调", img=("雨夜的上海街头",),
        img_not=("爵士", "每分钟", "小调", "90"), tags=("slow", "jazz", "piano"), tags_not=("90", "小调", "每分钟"),
        bpm=90, key="D minor", lang="zh", bugs=("language",)),
    Row("zh-music-only-waltz", "华尔兹，小提琴，降E大调", img=(NEUTRAL,), img_not=("华尔兹", "小提琴", "大调"),
        tags=("waltz", "violin"), tags_not=("大调",), key="Eb major", ts="3", lang="zh",
        bugs=("music-only", "language")),
    Row("zh-label", "月光下的湖面，古筝，歌词：月亮代表我的心", img=("月光下的湖面",), img_not=("月亮代表", "古筝", "歌词"),
        tags=("guzheng",), tags_not=("月亮代表", "歌词"), lyrics="[verse]\n月亮代表我的心", lang="zh",
        bugs=("lyrics", "language")),
    Row("zh-sung-quote", "一个女孩在雨中唱“等你回来”，钢琴，速度72，升F小调，2分钟", img=("一个女孩在雨中唱",),
        img_not=("等你回来", "2分钟", "速度", "钢琴"), tags=("piano", "rainy"), tags_not=("等你回来", "2分钟", "72"),
        lyrics="[verse]\n等你回来", bpm=72, key="F# minor", lang="zh", bugs=("lyrics", "language")),
    Row("zh-music-only-rock", "每分钟 120 拍，摇滚，C大调，四拍子", img=(NEUTRAL,), img_not=("摇滚", "120", "大调", "拍"),
        tags=("rock",), tags_not=("120", "大调"), bpm=120, key="C major", ts="4", lang="zh",
        bugs=("music-only", "language")),
    Row("zh-music-only-cello", "d小调的大提琴，舒缓，30秒", img=(NEUTRAL,), img_not=("大提琴", "小调", "30秒"),
        tags=("cello", "slow"), tags_not=("30秒", "小调"), bpm=70, key="D minor", lang="zh",
        bugs=("music-only", "language")),
    Row("zh-cat-piano", "小猫弹钢琴", img=("小猫弹钢琴",), tags=("piano",), lang="zh", bugs=("language",)),
    Row("zh-music-only-epic", "史诗般的管弦乐，140拍每分钟，3/4拍", img=(B.SCENES["epic"],),
        img_not=("管弦乐", "140", "3/4"), tags=("orchestral", "epic"), tags_not=("140", "3/4"), bpm=140,
        key="D minor", ts="3", lang="zh", bugs=("music-only", "language")),
    Row("zh-english-lyrics", "海边的黄昏，吉他，歌词：hold me close tonight", img=("海边的黄昏",),
        img_not=("hold me", "吉他"), tags=("guitar",), tags_not=("hold me",), lyrics="[verse]\nhold me close tonight",
        lang="en", bugs=("lyrics",)),
    Row("zh-image-only", "长城上的日落", img=("长城上的日落",), tags=(B.DEFAULT_TAGS,), lang="zh", bugs=("language",)),
]

FIELDS = {"image_prompt", "tags", "lyrics", "bpm", "keyscale", "timesignature", "language"}


def check(rules, row: Row):
    """Every field of rules(row.brief) against the row; AssertionError names the field."""
    f = rules(row.brief)
    assert set(f) == FIELDS, f
    img, tags = f["image_prompt"], f["tags"]
    assert img.endswith(SUFFIX) and len(img) <= B.LIMITS["image_prompt"], img
    for s in row.img:
        assert s in img, f"image_prompt lacks {s!r}: {img!r}"
    for s in row.img_not + ("bpm",):
        assert s.lower() not in img.lower(), f"image_prompt has {s!r}: {img!r}"
    for s in row.tags:
        assert s.lower() in tags.lower(), f"tags lack {s!r}: {tags!r}"
    for s in row.tags_not + ("bpm",):
        assert s.lower() not in tags.lower(), f"tags have {s!r}: {tags!r}"
    assert f["lyrics"] == row.lyrics, f"lyrics {f['lyrics']!r}"
    if row.lyrics != I:          # no line of the lyrics in the tags or the picture
        for line in row.lyrics.split("\n")[1:]:
            assert line.lower() not in tags.lower() and line.lower() not in img.lower(), line
    assert (f["bpm"], f["keyscale"], f["timesignature"], f["language"]) == (row.bpm, row.key, row.ts, row.lang), \
        f"bpm/key/ts/language {(f['bpm'], f['keyscale'], f['timesignature'], f['language'])}"
    assert B.BPM_MIN <= f["bpm"] <= B.BPM_MAX and f["keyscale"] in B.KEYSCALES
    assert f["timesignature"] in B.TIMESIGNATURES and f["language"] in B.LANGUAGES


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_rules_table(row):
    check(B.rules, row)


def test_the_table_covers_every_language_and_case():
    assert len(ROWS) >= 60 and len({r.id for r in ROWS}) == len(ROWS)
    by_lang = {lg: [r for r in ROWS if r.id.startswith(lg + "-")] for lg in ("en", "de", "fr", "es", "ja", "zh")}
    for lg, rows in by_lang.items():
        assert len(rows) >= 7, lg
        assert any(r.lyrics != I for r in rows), f"{lg}: no row with lyrics"
        assert any(r.img and r.img[0] in (NEUTRAL, *B.SCENES.values()) for r in rows), f"{lg}: no music-only row"
        assert any(r.tags == (B.DEFAULT_TAGS,) or "image-only" in r.id for r in rows), f"{lg}: no image-only row"
    for bug in ("lyrics", "music-only", "language"):
        assert sum(bug in r.bugs for r in ROWS) >= 5, bug


def test_motion_rules_follow_the_picture_not_the_music():
    """The motion prompt's subject is what the image prompt shows: a music-only brief moves its scene."""
    for brief, want in (("techno, 128 bpm", NEUTRAL), ("雨の夜の東京、ジャズピアノ、テンポ120", "雨の夜の東京"),
                        ('a kid on a swing, she sings "up we go"', "a kid on a swing")):
        for style in B.STYLES:
            m = B.motion_rules(brief, style)
            assert m.startswith(want) and "bpm" not in m and "up we go" not in m and "テンポ" not in m, m
