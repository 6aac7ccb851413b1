"""Spelling variants of names: how one name is written in many ways.

Variants come from explicit variant groups (Mohamed / Mohammed / Muhammad …), from a
culture's romanisation rules (ou/u, kh/ch, dj/j, sj/sh, -y/-i), and for Cyrillic names from
four romanisation systems (English, Dutch, French, German). Markers: a space or hyphen is
a compound boundary written split by default (``El Amrani`` → merged variant
``Elamrani``); ``~`` is one written merged by default (``Abdel~kader`` → ``Abdelkader``,
split variant ``Abdel Kader``). The pools these apply to are in ``names.py``.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------------------
# Spelling variants
# --------------------------------------------------------------------------------------
#: Explicit variant groups: canonical (as in the pools) → variants, most common first.
VARIANT_GROUPS: dict[str, list[str]] = {
    "Mohamed": [
        "Mohammed",
        "Muhammad",
        "Mohamad",
        "Mouhamed",
        "Mohammad",
        "Muhamed",
        "Mohamet",
        "Mhamed",
        "Mohemed",
        "Mahamed",
        "Muhammed",
        "Mouhammad",
        "Mohd",
        "Mahomed",
    ],
    "Mohammed": ["Mohamed", "Muhammad", "Mohammad", "Mohamad", "Muhammed", "Mouhammed"],
    "Mohammad": ["Mohammed", "Muhammad", "Mohamad", "Mohamed", "Mohammed", "Mahammad"],
    "Muhammad": ["Mohammad", "Muhammed", "Mohammed", "Mohd", "Mohamed"],
    "Ahmed": ["Ahmad", "Achmed", "Ahmet", "Akhmed", "Ahmid"],
    "Ahmad": ["Ahmed", "Achmad", "Ahmet"],
    "Youssef": ["Yousef", "Youssouf", "Yusuf", "Joesoef", "Youcef", "Yussef", "Jousef"],
    "Yousef": ["Youssef", "Yusuf", "Yousif", "Yosef"],
    "Yusuf": ["Youssouf", "Yousouf", "Yussuf", "Joesoef"],
    "Abdel~kader": ["Abdel~qader", "Abdul~kadir", "Abdel~kadir", "Abd el~kader", "Abdulkader"],
    "Abdel~lah": ["Abdallah", "Abdullah", "Abdellah", "Abdalla"],
    "Abdul~lah": ["Abdullah", "Abdallah", "Abdalla", "Abdula"],
    "Hassan": ["Hasan", "Hassane", "Hacene", "Hassen"],
    "Hussein": ["Hussain", "Hosein", "Houssein", "Husein", "Hüseyin", "Hossein"],
    "Hossein": ["Hosein", "Hussein", "Hossain", "Husain"],
    "Khalid": ["Khaled", "Chalid", "Halid", "Khalit"],
    "Khaled": ["Khalid", "Chaled", "Haled"],
    "Rachid": ["Rashid", "Rasheed", "Rachied", "Rachide", "Rasjid"],
    "Said": ["Saïd", "Saeed", "Sayed", "Saied"],
    "Karim": ["Kareem", "Kerim", "Karime"],
    "Mustapha": ["Mustafa", "Mostafa", "Moustafa", "Moestafa", "Mustefa"],
    "Mustafa": ["Mostafa", "Moustafa", "Mustapha"],
    "Omar": ["Umar", "Oumar", "Omer", "Omer"],
    "Ibrahim": ["Ebrahim", "Brahim", "Ibrahima", "Ibraheem"],
    "Brahim": ["Ibrahim", "Brahime", "Braham"],
    "Ismail": ["Ismael", "Esmail", "Smail", "Ismaïl"],
    "Yassine": ["Yasin", "Yassin", "Jassin", "Yacine"],
    "Jamal": ["Djamal", "Gamal", "Jamel", "Djamel"],
    "Djamel": ["Jamel", "Djamal", "Jamal"],
    "Othmane": ["Othman", "Osman", "Outhman", "Usman", "Otman"],
    "Fatima": ["Fatma", "Fatimah", "Fadma", "Fatiema", "Fattouma"],
    "Khadija": ["Khadidja", "Chadia", "Khadidja", "Kadija", "Hadiza", "Chadija"],
    "Aicha": ["Aisha", "Aïcha", "Ayesha", "Aïsha", "Aysha"],
    "Zineb": ["Zainab", "Zaynab", "Zeinab", "Zenab"],
    "Zainab": ["Zaynab", "Zeinab", "Zineb"],
    "Meryem": ["Mariam", "Maryam", "Meriem", "Mariame"],
    "Maryam": ["Mariam", "Meryem", "Mariyam"],
    "Noureddine": ["Nour~eddine", "Nourdine", "Nordin", "Nuredin", "Noor el din"],
    "Nordin": ["Nourdine", "Noureddine", "Nordine"],
    "Redouane": ["Ridouan", "Redwan", "Radouane", "Ridwan"],
    "Abderrahim": ["Abdel~rahim", "Abdurrahim", "Abd~errahim"],
    "Anouar": ["Anwar", "Anouar", "Anuar"],
    "Hocine": ["Hocin", "Houcine", "Hussein", "Hossine"],
    "Mehdi": ["Mahdi", "Mehdy", "Mahdy"],
    "Mahdi": ["Mehdi", "Mahdy"],
    "Mahmoud": ["Mahmud", "Mahmood", "Mahmut", "Machmoud"],
    "Tariq": ["Tarik", "Tarek", "Tarieq"],
    "Tarik": ["Tariq", "Tarek"],
    "Qasim": ["Kasim", "Qassem", "Kassem", "Qasem"],
    "Haider": ["Haidar", "Hayder", "Heider"],
    "Abdul~rahman": ["Abdel~rahman", "Abdurrahman", "Abd al~rahman"],
    "Abdel~rahman": ["Abdul~rahman", "Abderrahmane", "Abdelrahmen"],
    "Ali": ["Aly", "Alie"],
    "Mamadou": ["Mamadu", "Mahamadou", "Mamoudou", "Mammadou"],
    "Ousmane": ["Usman", "Osman", "Ousman", "Oesman"],
    "Abdoulaye": ["Abdullahi", "Abdulaye", "Abdoulay", "Abdallah"],
    "Ibrahima": ["Ibrahim", "Ebrima", "Brahima"],
    "Diallo": ["Jallow", "Djalo", "Jalloh", "Diallow"],
    "Jalloh": ["Diallo", "Jallow", "Djalo"],
    "Conteh": ["Conte", "Konteh", "Konté"],
    "Toure": ["Touré", "Ture", "Turay"],
    "Traore": ["Traoré", "Trawally", "Traoure"],
    "Camara": ["Kamara", "Camarah"],
    "Kamara": ["Camara", "Kamarah"],
    "Keita": ["Kéita", "Kaita", "Keyta"],
    "Cisse": ["Cissé", "Sisay", "Cissey"],
    "Kofi": ["Koffi", "Kofie"],
    "Kwame": ["Kwami", "Kouame"],
    "Tesfay": ["Tesfaye", "Tesfai", "Tesfa"],
    "Yohannes": ["Johannes", "Yohanes", "Yohanis", "Yuhannes"],
    "Haile": ["Hayle", "Hailé", "Haileh"],
    "Gebre~medhin": ["Ghebre~medhin", "Gebre~medin", "Gebremedhn"],
    "Weldemariam": ["Welde~mariam", "Woldemariam", "Wolde~mariam"],
    "Zhang": ["Chang", "Cheung", "Cheong"],
    "Wang": ["Wong", "Vang", "Ong"],
    "Li": ["Lee", "Lie", "Lei"],
    "Chen": ["Chan", "Tan", "Chin"],
    "Liu": ["Lau", "Lao", "Lew"],
    "Huang": ["Wong", "Hwang", "Ng"],
    "Zhou": ["Chou", "Chow", "Chau"],
    "Wu": ["Ng", "Woo", "Ou"],
    "Xu": ["Hsu", "Tsui", "Chui"],
    "Zhao": ["Chao", "Chiu", "Chew"],
    "Lin": ["Lam", "Lim", "Ling"],
    "Zheng": ["Cheng", "Tang", "Chang"],
    "Guo": ["Kuo", "Kwok", "Kuok"],
    "Xiao~ming": ["Hsiao~ming", "Siu~ming"],
    "Zhi~qiang": ["Chih~chiang", "Chi~keung"],
    "Xiu~ying": ["Hsiu~ying", "Sau~ying"],
    "Nguyen": ["Nguyên", "Ngyuen", "Nguen", "Win"],
    "Singh": ["Sing", "Sinhg"],
    "Hussain": ["Hussein", "Husain", "Hossain", "Hosain"],
    "Hossain": ["Hussain", "Hosain", "Hossein"],
    "Chowdhury": ["Chaudhry", "Choudhury", "Chowdhuri", "Chaudhary"],
    "Chaudhry": ["Chowdhury", "Chaudhary", "Choudhry"],
    "Qureshi": ["Kureshi", "Qurashi", "Koreshi"],
    "José": ["Jose", "Josè"],
    "João": ["Joao", "Joaõ", "Juan"],
    "Hakob": ["Akop", "Hakop", "Jacob"],
    "Grigoryan": ["Grigorian", "Grigorjan", "Krikorian"],
    "Mamedov": ["Mammadov", "Mamedow", "Mamadov"],
    "Aliyev": ["Aliev", "Alijev", "Aliyew"],
    "Huseynov": ["Guseinov", "Huseinov", "Gusejnov"],
    "Hasanov": ["Gasanov", "Hassanov"],
    "Kapanadze": ["Kapanatze"],
    "Giorgi": ["Georgi", "Gheorghi", "George"],
    "Davit": ["David", "Dawit"],
}

#: Romanisation rules by culture: (regex, replacement) applied one at a time.
RULES: dict[str, list[tuple[str, str]]] = {
    "maghrebi": [
        ("ou", "u"),
        ("ch", "sh"),
        ("kh", "ch"),
        ("kh", "h"),
        ("dj", "j"),
        ("ss", "s"),
        ("aa", "a"),
        ("^El ", "Al "),
        ("^El ", "El-"),
        ("^Ben ", "Ben-"),
        ("q", "k"),
        ("ai", "ay"),
        ("ou", "oe"),
        ("i$", "y"),
        ("ia", "ya"),
    ],
    "mashriq": [
        ("^Al-", "Al "),
        ("^Al-", "El-"),
        ("ou", "u"),
        ("kh", "ch"),
        ("kh", "h"),
        ("sh", "ch"),
        ("q", "k"),
        ("ee", "i"),
        ("oo", "u"),
        ("ay", "ai"),
        ("i$", "y"),
        ("y", "i"),
        ("dh", "z"),
        ("aa", "a"),
        ("mm", "m"),
    ],
    "persian": [
        ("i$", "y"),
        ("ou", "u"),
        ("oo", "u"),
        ("kh", "ch"),
        ("gh", "g"),
        ("sh", "sj"),
        ("ee", "i"),
        ("ei", "ey"),
        ("w", "v"),
        ("ullah$", "ollah"),
        ("zz", "z"),
    ],
    "turkish": [
        ("[öÖ]", "oe"),
        ("[üÜ]", "ue"),
        ("[şŞ]", "sch"),
        ("[şŞ]", "sj"),
        ("[çÇ]", "tsj"),
        ("[çÇ]", "ch"),
        ("ğ", ""),
        ("ğ", "g"),
        ("ı", "i"),
        ("İ", "I"),
        ("[öÖ]", "o"),
        ("[üÜ]", "u"),
    ],
    "west_african": [
        ("ou", "u"),
        ("dj", "j"),
        ("^Di", "J"),
        ("ll", "l"),
        ("h$", ""),
        ("ee", "i"),
        ("oo", "u"),
        ("u", "ou"),
        ("k", "c"),
        ("y", "i"),
    ],
    "horn": [
        ("^Gh", "G"),
        ("^G", "Gh"),
        ("ay$", "ai"),
        ("e$", "a"),
        ("y", "i"),
        ("tt", "t"),
        ("ss", "s"),
        ("w", "v"),
        ("dh", "d"),
        ("^Wel", "Wol"),
    ],
    "albanian": [
        ("ë", "e"),
        ("ç", "c"),
        ("ç", "ch"),
        ("xh", "dzh"),
        ("xh", "j"),
        ("sh", "sj"),
        ("q", "c"),
        ("q", "tj"),
        ("gj", "dj"),
        ("y", "u"),
    ],
    "caucasus": [
        ("yan$", "ian"),
        ("yan$", "jan"),
        ("kh", "ch"),
        ("kh", "x"),
        ("kh", "h"),
        ("sh", "sj"),
        ("ts", "c"),
        ("yev$", "ev"),
        ("ov$", "ow"),
        ("vili$", "wili"),
    ],
    "chinese": [],
    "south_asian": [
        ("ee", "i"),
        ("oo", "u"),
        ("ai", "ay"),
        ("sh", "s"),
        ("q", "k"),
        ("ch", "tsj"),
        ("w", "v"),
        ("dh", "d"),
        ("th", "t"),
    ],
    "southeast_asian": [("^Dela~", "De la "), ("^Dela~", "Dela "), ("u", "oe")],
    "latin": [
        ("z$", "s"),
        ("ll", "y"),
        ("y", "i"),
        ("v", "b"),
        ("j", "g"),
        ("^De la ", "Dela "),
        ("^Del ", "Del"),
        ("ão", "ao"),
        ("ç", "c"),
    ],
    "english": [("ph", "f"), ("ck", "k"), ("mm", "m"), ("ll", "l"), ("^Mac", "Mc"), ("'", "")],
}

#: Whole-name respellings: every rule of a set applied together (Öztürk → Oeztuerk).
COMBINED_RULES: dict[str, list[list[tuple[str, str]]]] = {
    "turkish": [
        [
            ("[öÖ]", "oe"),
            ("[üÜ]", "ue"),
            ("[şŞ]", "sch"),
            ("[çÇ]", "tsch"),
            ("ğ", "g"),
            ("ı", "i"),
            ("İ", "I"),
        ],
        [
            ("[öÖ]", "oe"),
            ("[üÜ]", "ue"),
            ("[şŞ]", "sj"),
            ("[çÇ]", "tsj"),
            ("ğ", ""),
            ("ı", "i"),
            ("İ", "I"),
        ],
    ],
    "albanian": [[("ë", "e"), ("ç", "ch"), ("xh", "dzh"), ("sh", "sh")]],
}

# Cyrillic romanisation systems (Russian/Ukrainian letters).
_CYRILLIC_COMMON = {
    "а": "a",
    "б": "b",
    "г": "g",
    "д": "d",
    "е": "e",
    "з": "z",
    "и": "i",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "ф": "f",
    "ы": "y",
    "ь": "",
    "ъ": "",
    "э": "e",
    "і": "i",
}
ROMANISATIONS: dict[str, dict[str, str]] = {
    "english": {
        **_CYRILLIC_COMMON,
        "в": "v",
        "ё": "yo",
        "ж": "zh",
        "й": "y",
        "у": "u",
        "х": "kh",
        "ц": "ts",
        "ч": "ch",
        "ш": "sh",
        "щ": "shch",
        "ю": "yu",
        "я": "ya",
        "є": "ye",
        "ї": "yi",
    },
    "dutch": {
        **_CYRILLIC_COMMON,
        "в": "v",
        "ё": "jo",
        "ж": "zj",
        "й": "j",
        "у": "oe",
        "х": "ch",
        "ц": "ts",
        "ч": "tsj",
        "ш": "sj",
        "щ": "sjtsj",
        "ю": "joe",
        "я": "ja",
        "є": "je",
        "ї": "ji",
    },
    "french": {
        **_CYRILLIC_COMMON,
        "в": "v",
        "ё": "io",
        "ж": "j",
        "й": "ï",
        "у": "ou",
        "х": "kh",
        "ц": "ts",
        "ч": "tch",
        "ш": "ch",
        "щ": "chtch",
        "ю": "iou",
        "я": "ia",
        "є": "ie",
        "ї": "ï",
    },
    "german": {
        **_CYRILLIC_COMMON,
        "в": "w",
        "ё": "jo",
        "ж": "sch",
        "й": "j",
        "у": "u",
        "х": "ch",
        "ц": "z",
        "ч": "tsch",
        "ш": "sch",
        "щ": "schtsch",
        "ю": "ju",
        "я": "ja",
        "є": "je",
        "ї": "ji",
        "з": "s",
    },
}
_CYRILLIC_LETTERS = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюяієї")


def romanise(cyrillic: str, system: str = "english") -> str:
    """Romanise a Cyrillic name with one system; the initial letter is capitalised."""
    table = ROMANISATIONS[system]
    out = "".join(table.get(ch, ch) for ch in cyrillic.lower())
    if system == "english":
        out = re.sub(r"iy$", "y", out)
    return out[:1].upper() + out[1:]


def render(marked: str) -> str:
    """The written form of a pool entry: drop the merged-compound marker."""
    return marked.replace("~", "")


def compound_alternative(marked: str) -> str | None:
    """The other way of writing a compound: merged if split, split if merged, else None."""
    if "~" in marked:
        head, _, tail = marked.partition("~")
        return f"{head} {tail[:1].upper()}{tail[1:]}"
    parts = re.split(r"[ \-]", marked)
    if len(parts) > 1:
        return parts[0] + "".join(p[:1].lower() + p[1:] for p in parts[1:])
    return None


def spelling_variants(marked: str, culture: str, limit: int = 8) -> list[str]:
    """Spelling variants of a (marked) pool entry, most likely first, canonical excluded."""
    if culture == "slavic" and any(ch in _CYRILLIC_LETTERS for ch in marked.lower()):
        forms = [romanise(marked, s) for s in ("english", "dutch", "french", "german")]
        canonical = forms[0]
    else:
        canonical = marked
        forms = [canonical, *VARIANT_GROUPS.get(marked, [])]
        for rule_set in COMBINED_RULES.get(culture, []):
            candidate = canonical
            for pattern, replacement in rule_set:
                candidate = re.sub(pattern, replacement, candidate)
            forms.append(candidate[:1].upper() + candidate[1:])
        for pattern, replacement in RULES.get(culture, []):
            candidate = re.sub(pattern, replacement, canonical)
            if candidate != canonical and candidate:
                forms.append(candidate[:1].upper() + candidate[1:])
    seen: list[str] = []
    for form in forms:
        if render(form) != render(canonical) and render(form) not in (render(s) for s in seen):
            seen.append(form)
    return seen[:limit]


def canonical_form(marked: str, culture: str) -> str:
    """Marked canonical spelling of a pool entry (Cyrillic entries in English romanisation)."""
    if culture == "slavic" and any(ch in _CYRILLIC_LETTERS for ch in marked.lower()):
        return romanise(marked, "english")
    return marked
