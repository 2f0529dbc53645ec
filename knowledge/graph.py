"""The decision graph of a pack as a Mermaid flowchart: symptom -> checks -> causes -> resolution /
escalation. Generated from the data, so it can never drift from what the engine walks."""

from __future__ import annotations

from knowledge.schema import Bundle


def _label(text: str) -> str:
    # Mermaid labels live in double quotes; quotes and angle brackets inside them need entities.
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(bundle: Bundle) -> str:
    p = bundle.pack
    out = ["flowchart LR"]
    for sym in p.symptoms:
        out.append(f'    S_{_id(sym.id)}(["{_label(sym.title)}"])')
    for check in p.checks:
        out.append(f'    C_{_id(check.id)}{{"{_label(check.title)}"}}')
    for cause in p.causes:
        out.append(f'    K_{_id(cause.id)}["{_label(cause.title)}"]')
        res = cause.resolution
        out.append(f'    R_{_id(cause.id)}[/"Resolve: {_label(res.summary)}"/]')
    out.append('    ESC[["Raise a case with Cato Support (prefilled ticket)"]]')
    for sym in p.symptoms:
        prev = f"S_{_id(sym.id)}"
        for cid in sym.checks:
            out.append(f"    {prev} --> C_{_id(cid)}")
            prev = f"C_{_id(cid)}"
    for check in p.checks:
        for ans in check.answers:
            if ans.confirms:
                out.append(f'    C_{_id(check.id)} -- "{_label(ans.label)}" --> K_{_id(ans.confirms)}')
    for cause in p.causes:
        out.append(f"    K_{_id(cause.id)} --> R_{_id(cause.id)}")
        if cause.resolution.escalate:
            out.append(f"    R_{_id(cause.id)} --> ESC")
        else:
            out.append(f'    R_{_id(cause.id)} -- "not fixed" --> ESC')
    return "\n".join(out)


def _id(s: str) -> str:
    return s.replace("-", "_")
