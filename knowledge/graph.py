"""The decision graph of a pack as a Mermaid flowchart: flow (symptom or topic) -> checks -> causes ->
resolution / escalation, plus the error catalogue's strings pointing at causes and topics. Generated from
the data, so it can never drift from what the engine walks. Labels use the generic (IdP-neutral) wording."""

from __future__ import annotations

from knowledge.schema import Bundle


def _label(text: str) -> str:
    # Mermaid labels live in double quotes; quotes and angle brackets inside them need entities.
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(bundle: Bundle) -> str:
    p = bundle.pack
    w = bundle.word
    out = ["flowchart LR"]
    for sym in p.symptoms:
        out.append(f'    S_{_id(sym.id)}(["{_label(w(sym.title))}"])')
    for topic in p.topics:
        out.append(f'    T_{_id(topic.id)}(["{_label(w(topic.title))} (beyond the playbook)"])')
    for check in p.checks:
        out.append(f'    C_{_id(check.id)}{{"{_label(w(check.title))}"}}')
    for cause in p.causes:
        out.append(f'    K_{_id(cause.id)}["{_label(w(cause.title))}"]')
        res = cause.resolution
        lead = "Works as designed" if cause.as_designed else "Resolve"
        out.append(f'    R_{_id(cause.id)}[/"{lead}: {_label(w(res.summary))}"/]')
    out.append('    ESC[["Raise a case with Cato Support (prefilled ticket)"]]')
    flows = [(f"S_{_id(s.id)}", s) for s in p.symptoms] + [(f"T_{_id(t.id)}", t) for t in p.topics]
    for node, flow in flows:
        prev = node
        for cid in flow.checks:
            out.append(f"    {prev} --> C_{_id(cid)}")
            prev = f"C_{_id(cid)}"
        if not flow.checks:
            for wc in flow.causes:
                out.append(f"    {node} --> K_{_id(wc.cause)}")
    for check in p.checks:
        for ans in check.answers:
            if ans.confirms:
                out.append(f'    C_{_id(check.id)} -- "{_label(w(ans.label))}" --> K_{_id(ans.confirms)}')
    for err in p.errors:
        target = f"T_{_id(err.topic)}" if err.topic is not None else f"K_{_id(str(err.cause))}"  # exactly one is set
        out.append(f'    E_{_id(err.id)}>"{_label(err.match[0][:60])}"] -.-> {target}')
    for cause in p.causes:
        out.append(f"    K_{_id(cause.id)} --> R_{_id(cause.id)}")
        if cause.resolution.escalate:
            out.append(f"    R_{_id(cause.id)} --> ESC")
        elif not cause.as_designed:
            out.append(f'    R_{_id(cause.id)} -- "not fixed" --> ESC')
    return "\n".join(out)


def _id(s: str) -> str:
    return s.replace("-", "_")
