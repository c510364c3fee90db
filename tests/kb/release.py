"""A tiny MedDRA-format release written by the tests: the real ASCII column
layouts (``$``-separated, trailing ``$``) with invented 8-digit codes. It
holds no MedDRA content beyond a dozen everyday medical words."""
from pathlib import Path
from typing import Dict, List, Tuple

# pt_code, pt_name, soc_code
PTS: List[Tuple[str, str, str]] = [
    ("90000001", "Anaemia", "90100001"),
    ("90000002", "Diarrhoea", "90100002"),
    ("90000003", "Oedema peripheral", "90100003"),
    ("90000004", "Thrombotic microangiopathy", "90100001"),
    ("90000005", "Headache", "90100004"),
    ("90000006", "Nausea", "90100002"),
    ("90000007", "Acute respiratory distress syndrome", "90100005"),
    ("90000008", "Pruritus", "90100006"),
    ("90000009", "Somnolence", "90100004"),
    ("90000010", "Vomiting", "90100002"),
    ("90000011", "Abdominal pain", "90100002"),
    ("90000012", "Rash", "90100006"),
    ("90000013", "Haemorrhage", "90100007"),
]
SOCS: Dict[str, Tuple[str, str]] = {
    "90100001": ("Blood and lymphatic system disorders", "Blood"),
    "90100002": ("Gastrointestinal disorders", "Gastr"),
    "90100003": ("General disorders and administration site conditions", "Genrl"),
    "90100004": ("Nervous system disorders", "Nerv"),
    "90100005": ("Respiratory, thoracic and mediastinal disorders", "Resp"),
    "90100006": ("Skin and subcutaneous tissue disorders", "Skin"),
    "90100007": ("Vascular disorders", "Vasc"),
}
# llt_code, llt_name, pt_code, current
EXTRA_LLTS: List[Tuple[str, str, str, str]] = [
    ("90000101", "Itching", "90000008", "Y"),
    ("90000102", "Tummy ache", "90000011", "N"),
    ("90000103", "Bleeding", "90000013", "Y"),
    ("90000104", "Sleepiness", "90000009", "Y"),
]


def llt_line(code: str, name: str, pt: str, current: str) -> str:
    # llt_code$llt_name$pt_code$whoart$harts$costart$icd9$icd9cm$icd10$currency$jart$
    return f"{code}${name}${pt}$$$$$$${current}$$"


def pt_line(code: str, name: str, soc: str) -> str:
    # pt_code$pt_name$null$pt_soc_code$whoart$harts$costart$icd9$icd9cm$icd10$jart$
    return f"{code}${name}$${soc}$$$$$$$$"


def hier_line(pt: str, name: str, soc: str, primary: str = "Y", primary_soc: str = "") -> str:
    # pt$hlt$hlgt$soc$pt_name$hlt_name$hlgt_name$soc_name$soc_abbrev$null$pt_soc_code$primary_soc_fg$
    soc_name, abbrev = SOCS[soc]
    pt_soc = primary_soc or soc
    return f"{pt}$9020{pt[-4:]}$9030{pt[-4:]}${soc}${name}${name} HLT${name} HLGT${soc_name}${abbrev}$${pt_soc}${primary}$"


def write_release(path: Path, *, hierarchy: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pt.asc").write_text("\n".join(pt_line(*p) for p in PTS) + "\n", encoding="utf8")
    llts = [llt_line(code, name, code, "Y") for code, name, _ in PTS] + [llt_line(*x) for x in EXTRA_LLTS]
    (path / "llt.asc").write_text("\n".join(llts) + "\n", encoding="utf8")
    if hierarchy:
        lines = [hier_line(code, name, soc) for code, name, soc in PTS]
        # a secondary SOC link for Haemorrhage must not replace the primary one
        lines.append(hier_line("90000013", "Haemorrhage", "90100001", primary="N", primary_soc="90100007"))
        (path / "mdhier.asc").write_text("\n".join(lines) + "\n", encoding="utf8")
    return path
