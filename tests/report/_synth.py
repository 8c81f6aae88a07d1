"""A tiny synthetic IU X-ray-like corpus for the generator tests (real IU sentences, made-up studies)."""

from __future__ import annotations

from radscribe.findings.model import Finding

NORMAL = "The heart is normal in size. The lungs are clear. No pneumothorax or pleural effusion."
CARDIO = "The heart is enlarged. The lungs are clear. No pneumothorax or pleural effusion."
LEFT_EFF = "There is a small left pleural effusion. The heart is normal in size. No pneumothorax."
RIGHT_EFF = "There is a small right pleural effusion. The heart is normal in size. No pneumothorax."


def oracle(kind: str, side: str | None = None, severity: str | None = None) -> Finding:
    return Finding(kind=kind, detector="mesh-oracle", confidence=1.0, side=side,
                   attributes={"severity": severity} if severity else {})


def study(i: int, reference: str, findings: tuple[Finding, ...], split: str = "train"):
    from radscribe.data.iu_xray import IUStudy

    return IUStudy(id=f"CXR{i}_IM-{i}", uid=str(i), split=split, reference=reference, findings_text=reference,
                   impression="", indication="Cough.", mesh=(), oracle=findings, from_indication=())


def corpus() -> list:
    """7 normal, 3 cardiomegaly, 2 left and 2 right effusions (deterministic order)."""
    rows = ([(NORMAL, ())] * 7 + [(CARDIO, (oracle("cardiomegaly"),))] * 3
            + [(LEFT_EFF, (oracle("effusion", "left", "mild"),))] * 2
            + [(RIGHT_EFF, (oracle("effusion", "right", "mild"),))] * 2)
    return [study(i, ref, fs) for i, (ref, fs) in enumerate(rows)]
