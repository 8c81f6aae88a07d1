"""Standard codes for radscribe's concepts: SNOMED CT (SCT), DICOM (DCM), LOINC (LN) and UCUM units.

One table per concept family; the DICOM SR and FHIR exports read them from here and nowhere else.
A kind without a verified code maps to ``None`` (never a guessed number); the exports then fall back
to radscribe's own local scheme, which validators report as private.

Where each code comes from (every entry says which):

- ``PS3.16``: the DICOM Content Mapping Resource, as bundled with pydicom (``pydicom.sr.codedict``),
  with the context group (CID) it is listed in. DICOM-defined codes (DCM) come only from there.
- ``SNOMED Intl``: a SNOMED International publication (editorial guide, template, release notes).
- ``IG``: an HL7 FHIR implementation guide value set (the LDCT screening "Incidental Finding" value
  set) or ontology cross-references (EFO/MONDO ``SCTID:``, UMLS ``SNOMEDCT_US``).
- ``lists``: the same code and term in at least three independent public code lists (FHIR concept
  maps, OMOP concept tables, ICD-10/ICD-11 crosswalks); used only where the others are silent.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEME_URIS: dict[str, str] = {
    "SCT": "http://snomed.info/sct",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "LN": "http://loinc.org",
    "UCUM": "http://unitsofmeasure.org",
    "RADLEX": "http://radlex.org",
}
#: radscribe's local scheme for concepts without a standard code (DICOM PS3.16 allows 99-prefixed schemes).
LOCAL_SCHEME = "99RADSCRIBE"
LOCAL_URI = "https://radscribe.org/fhir/CodeSystem/finding-kind"


@dataclass(frozen=True)
class Code:
    """One coded concept: ``scheme`` is a DICOM coding scheme designator (SCT, DCM, LN, UCUM, RADLEX)."""

    value: str
    scheme: str
    meaning: str

    @property
    def system(self) -> str:
        """The FHIR ``Coding.system`` URI of the scheme."""
        return SCHEME_URIS.get(self.scheme, LOCAL_URI)

    def fhir(self) -> dict[str, str]:
        """A FHIR ``Coding``."""
        return {"system": self.system, "code": self.value, "display": self.meaning}


def _sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


def _dcm(value: str, meaning: str) -> Code:
    return Code(value, "DCM", meaning)


#: Finding kind id -> its concept. Every kind of ``kinds.FINDING_KINDS`` is listed (a test checks it).
KIND_CODES: dict[str, Code | None] = {
    "nodule": _sct("27925004", "Nodule"),                        # PS3.16 CID 6104 (chest abnormal opacity)
    "mass": _sct("4147007", "Mass"),                             # PS3.16 CID 6104
    "calcified_granuloma": None,                                 # no verified SNOMED concept found
    "calcification": _sct("18115005", "Pathologic calcification"),  # PS3.16 CID 6336
    "cyst": _sct("367643001", "Cyst"),                           # PS3.16 CID 6335, 7159
    "stone": _sct("95570007", "Kidney stone"),                   # lists (FHIR codings, concept tables)
    "tumour": _sct("108369006", "Neoplasm"),                     # PS3.16 CID 7159 (lesion segmentation type)
    "glioma": None,                                              # public lists disagree; not verified
    "meningioma": _sct("393566004", "Meningioma"),               # SNOMED Intl release notes (Oct 2025)
    "pituitary_tumour": None,                                    # public lists disagree; not verified
    "adrenal_mass": _sct("237783006", "Mass of adrenal gland"),  # IG (LDCT incidental finding value set)
    # PS3.16's SNOMED table gives 1386000 the FSN "Intracranial hemorrhage (disorder)" (its CID 3413 entry
    # "Occlusion of artery" for the same number is an erratum); a MedDRA->SNOMED concept map agrees.
    "haemorrhage": _sct("1386000", "Intracranial hemorrhage"),
    "consolidation": _sct("95436008", "Lung consolidation"),     # IG (LDCT incidental finding value set)
    "ground_glass_opacity": _dcm("112120", "Ground glass opacity"),  # PS3.16 CID 6104 (no SCT in PS3.16)
    "opacity": _dcm("112001", "Opacity"),                        # PS3.16 CID 6104
    "atelectasis": _sct("46621007", "Atelectasis"),              # lists (FHIR concept map, label maps)
    "pneumonia": _sct("233604007", "Pneumonia"),                 # SNOMED Intl editorial guide
    # SNOMED Intl interim release (March 2020): 840539006 "Disease caused by SARS-CoV-2", preferred term
    # COVID-19. It codes the disease; the pneumonia concept (882784691000119100) is US-extension only.
    "covid19_pneumonia": _sct("840539006", "COVID-19"),
    "edema": _sct("19242006", "Pulmonary edema"),                # PS3.16 CID 3700
    "emphysema": _sct("87433001", "Pulmonary emphysema"),        # IG (LDCT value set; RadLex RID4799 too)
    "fibrosis": _sct("51615001", "Pulmonary fibrosis"),          # IG (EFO/MONDO SCTID cross-reference)
    "effusion": _sct("60046008", "Pleural effusion"),            # PS3.16 CID 645
    "pneumothorax": _sct("36118008", "Pneumothorax"),            # PS3.16 CID 6105
    "pleural_thickening": None,                                  # no verified concept found
    # PS3.16 CID 12248 lists 287272002 as "Cardiomegaly", but its own SNOMED table names that concept
    # "Enlarged septal foramen of heart", so the common 8186001 is used instead.
    "cardiomegaly": _sct("8186001", "Cardiomegaly"),             # lists
    "enlarged_cardiomediastinum": None,                          # no verified concept found
    "tortuous_aorta": None,                                      # no verified concept found
    "lymphadenopathy": _sct("30746006", "Lymphadenopathy"),      # PS3.16 CID 6347; IG
    "hilar_enlargement": None,                                   # no verified concept found
    "hiatal_hernia": _sct("84089009", "Hiatal hernia"),          # lists (incl. ICD-10 K44.9 / ICD-11 DA23 maps)
    "fracture": _sct("125605004", "Fracture of bone"),           # SNOMED Intl template "Fracture of [bone]"
    "degenerative_change": None,                                 # too broad for one concept
    "support_device": None,                                      # a device class, not one concept
    "hypoinflation": None,                                       # no verified concept found
    "atherosclerosis": None,                                     # aortic atherosclerosis: not verified
    "elevated_diaphragm": None,                                  # no verified concept found
    "scoliosis": _sct("298382003", "Scoliosis deformity of spine"),  # lists (incl. a terminology server IRI)
    "kyphosis": _sct("414564002", "Kyphosis deformity of spine"),    # IG value set; lists
    "osteopenia": _sct("312894000", "Osteopenia"),               # IG (LDCT value set; UMLS SNOMEDCT_US PT)
    "pericardial_effusion": _sct("373945007", "Pericardial effusion"),  # PS3.16 CID 12236
    "subcutaneous_emphysema": None,                              # no verified concept found
    "increased_markings": None,                                  # a radiographic pattern without a concept
    "other": None,                                               # by design: the original term is kept instead
}

#: Laterality (PS3.16 CID 244). PS3.16 calls 51440002 "Bilateral"; SNOMED CT's preferred term, which FHIR
#: validators check the display against, is "Right and left".
SIDE_CODES: dict[str, Code] = {
    "left": _sct("7771000", "Left"),
    "right": _sct("24028007", "Right"),
    "bilateral": _sct("51440002", "Right and left"),
}

#: Anatomy id -> (site, laterality of the site); all from PS3.16 (CIDs 4, 4030, 6124, 7151, 7153).
ANATOMY_CODES: dict[str, tuple[Code, str | None]] = {
    "chest": (_sct("816094009", "Chest"), None),
    "lungs": (_sct("39607008", "Lung"), None),
    "right_lung": (_sct("39607008", "Lung"), "right"),
    "left_lung": (_sct("39607008", "Lung"), "left"),
    "right_upper_lobe": (_sct("45653009", "Upper lobe of lung"), "right"),
    "right_middle_lobe": (_sct("72481006", "Middle lobe of right lung"), "right"),
    "right_lower_lobe": (_sct("90572001", "Lower lobe of lung"), "right"),
    "left_upper_lobe": (_sct("45653009", "Upper lobe of lung"), "left"),
    "left_lower_lobe": (_sct("90572001", "Lower lobe of lung"), "left"),
    "upper_zone": (_sct("281392002", "Upper zone of lung"), None),
    "middle_zone": (_sct("281393007", "Middle zone of lung"), None),
    "lower_zone": (_sct("281394001", "Lower zone of lung"), None),
    "pleura": (_sct("3120008", "Pleura"), None),
    "bronchi": (_sct("955009", "Bronchus"), None),
    "heart": (_sct("80891009", "Heart"), None),
    "mediastinum": (_sct("72410000", "Mediastinum"), None),
    "abdomen": (_sct("818981001", "Abdomen"), None),
    "kidneys": (_sct("64033007", "Kidney"), None),
    "right_kidney": (_sct("64033007", "Kidney"), "right"),
    "left_kidney": (_sct("64033007", "Kidney"), "left"),
    "adrenal": (_sct("23451007", "Adrenal gland"), None),
    "right_adrenal": (_sct("23451007", "Adrenal gland"), "right"),
    "left_adrenal": (_sct("23451007", "Adrenal gland"), "left"),
    "brain": (_sct("12738006", "Brain"), None),
    "cerebral_hemisphere": (_sct("372073000", "Cerebral hemisphere"), None),
    "frontal_lobe": (_sct("83251001", "Frontal lobe"), None),
    "parietal_lobe": (_sct("16630005", "Parietal lobe"), None),
    "temporal_lobe": (_sct("78277001", "Temporal lobe"), None),
    "occipital_lobe": (_sct("31065004", "Occipital lobe"), None),
    "sella": (_sct("42575006", "Sella turcica"), None),
    "cerebellum": (_sct("113305005", "Cerebellum"), None),
    # "lingula": no concept in PS3.16
}

#: Attribute value -> concept, where PS3.16 has one (solid / part-solid nodules have none there).
ATTRIBUTE_CODES: dict[str, Code] = {
    "ground_glass": _dcm("112120", "Ground glass opacity"),     # CID 6104
    "calcified": _sct("237897009", "Calcified"),                # CID 3712
}

#: radscribe size unit -> UCUM unit (UCUM's own codes; ``{pixel}`` is a UCUM annotation of unity).
UNIT_CODES: dict[str, Code] = {
    "mm": Code("mm", "UCUM", "mm"),
    "mm3": Code("mm3", "UCUM", "mm3"),
    "px": Code("{pixel}", "UCUM", "pixel"),
    "%": Code("%", "UCUM", "%"),
    "1": Code("1", "UCUM", "no units"),
}

#: Concepts of the SR content tree (PS3.16): measurement names and study-level results.
LONG_AXIS = _sct("103339001", "Long axis")
SHORT_AXIS = _sct("103340004", "Short axis")
VOLUME = _sct("118565006", "Volume")
CERTAINTY_OF_FINDING = _dcm("111012", "Certainty of Finding")        # CID 6048; a percentage
LESION_DENSITY = _dcm("111035", "Lesion Density")
SUMMARY_OF_DETECTIONS = _dcm("111064", "Summary of Detections")
ALL_SUCCEEDED_WITHOUT_FINDINGS = _dcm("111241", "All algorithms succeeded; without findings")  # CID 6047

#: Modality -> procedure reported (LOINC "<modality> unspecified body region", PS3.16 CID 100).
PROCEDURE_CODES: dict[str, Code] = {
    "CT": Code("25045-6", "LN", "CT unspecified body region"),
    "MR": Code("25056-3", "LN", "MRI unspecified body region"),
    "CR": Code("43468-8", "LN", "XR unspecified body region"),
    "DX": Code("43468-8", "LN", "XR unspecified body region"),
    "RG": Code("43468-8", "LN", "XR unspecified body region"),
    "NM": Code("49118-3", "LN", "NM unspecified body region"),
    "PT": Code("44136-0", "LN", "PET unspecified body region"),
}
IMAGING_PROCEDURE = _sct("363679005", "Imaging procedure")           # CID 100, for any other modality


def kind_code(kind_id: str) -> Code | None:
    """The standard concept of a finding kind, or None when it has none; KeyError for an unknown kind."""
    if kind_id not in KIND_CODES:
        raise KeyError(f"unknown finding kind {kind_id!r}; known: {sorted(KIND_CODES)}")
    return KIND_CODES[kind_id]


def side_code(side: str | None) -> Code | None:
    return SIDE_CODES.get(side or "")


def anatomy_code(anatomy_id: str | None) -> tuple[Code, str | None] | None:
    """(site concept, the side the site implies) for an anatomy id, or None when it has no concept."""
    return ANATOMY_CODES.get(anatomy_id or "")


def unit_code(unit: str) -> Code:
    """UCUM unit for a radscribe unit name ("mm", "mm3", "px", "%", "1"); KeyError for another."""
    return UNIT_CODES[unit]


def procedure_code(modality: str | None) -> Code:
    return PROCEDURE_CODES.get((modality or "").upper(), IMAGING_PROCEDURE)
