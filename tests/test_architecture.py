"""The package's structure: no import cycles (function-level imports included), models by registry."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "decision_transformer"
ROOT = "decision_transformer"


def _imports() -> dict[str, set[str]]:
    """module (dotted, under the package) -> the package modules it imports, anywhere in its body."""
    mods = {".".join(p.relative_to(PKG).with_suffix("").parts) for p in PKG.rglob("*.py")}
    graph = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(PKG).with_suffix("").parts)
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{name}: relative import; use absolute decision_transformer.* imports")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(ROOT):
                mod = node.module[len(ROOT) + 1:]
                for a in node.names:                      # `from decision_transformer.report import plots`
                    if f"{mod}.{a.name}".lstrip(".") in mods:
                        deps.add(f"{mod}.{a.name}".lstrip("."))
                    elif mod in mods:
                        deps.add(mod)
        graph[name] = {d for d in deps if not d.endswith("__init__") and d} - {name}
    return graph


def _cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        stack.pop()
        return None
    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_cycles():
    graph = _imports()
    graph = {k: v for k, v in graph.items() if not k.endswith("__init__")}   # package re-exports, not dependencies
    c = _cycle(graph)
    assert c is None, " -> ".join(c)


def test_no_block_of_six_lines_is_written_twice():
    """One implementation of each idea: no run of 6 identical code lines (comments and blank
    lines skipped, whitespace stripped, runs of under 120 characters ignored) appears twice in src/."""
    from collections import defaultdict
    seen = defaultdict(list)
    for f in sorted(PKG.rglob("*.py")):
        lines = [(i + 1, ln.strip()) for i, ln in enumerate(f.read_text().splitlines())]
        lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
        for j in range(len(lines) - 5):
            run = tuple(ln for _, ln in lines[j:j + 6])
            if sum(map(len, run)) >= 120:
                seen[run].append(f"{f.relative_to(PKG)}:{lines[j][0]}")
    repeated = [places for places in seen.values() if len(places) > 1]
    assert not repeated, f"the same 6 lines at {repeated[:5]}"


def test_models_by_registry_and_a_clear_error_for_unknown_ones(tmp_path):
    import json

    from decision_transformer import (
        BCConfig,
        BCModel,
        DecisionTransformer,
        DecisionTransformerConfig,
    )
    from decision_transformer.errors import CheckpointError
    from decision_transformer.models.checkpoint import from_pretrained, save_pretrained
    from decision_transformer.models.policy import architectures, build, lookup
    from decision_transformer import OnlineDecisionTransformer, OnlineDecisionTransformerConfig
    assert architectures() == ["bc", "dt", "odt"]
    assert lookup("odt") == (OnlineDecisionTransformerConfig, OnlineDecisionTransformer)
    assert lookup("dt") == (DecisionTransformerConfig, DecisionTransformer) and lookup("bc") == (BCConfig, BCModel)
    bc = build(BCConfig(state_dim=3, act_dim=2, context_length=4, hidden_size=8, n_layer=2, dropout=0.2))
    save_pretrained(bc, tmp_path / "bc")
    saved = json.loads((tmp_path / "bc" / "config.json").read_text())["decision_transformer"]
    assert saved["architecture"] == "bc" and saved["dropout"] == 0.2 and "n_head" not in saved
    again = from_pretrained(tmp_path / "bc")
    assert isinstance(again, BCModel) and again.config == bc.config
    saved["architecture"] = "mamba"
    (tmp_path / "bc" / "config.json").write_text(json.dumps({"decision_transformer": saved}))
    with pytest.raises(CheckpointError, match="unknown model architecture 'mamba': this version knows bc, dt"):
        from_pretrained(tmp_path / "bc")
