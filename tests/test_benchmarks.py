"""The benchmarks' own input checks (the benchmarks themselves run under `make bench`, never as timed tests)."""

from __future__ import annotations

from tests.conftest import run_py


def test_the_authors_benchmark_refuses_a_missing_or_wrong_path(tmp_path):
    r = run_py(["-m", "benchmarks.bigram_backcopy_authors"], env_extra={"BBM_PATH": ""}, timeout=120)
    assert r.returncode != 0 and "set BBM_PATH" in r.stderr
    r = run_py(["-m", "benchmarks.bigram_backcopy_authors"], env_extra={"BBM_PATH": str(tmp_path)}, timeout=120)
    assert r.returncode != 0 and f"BBM_PATH={tmp_path} has no model.py" in r.stderr


def test_the_profile_classifies_ops_by_their_hlo():
    from benchmarks.profile_transformer import classify

    hlo = """HloModule m

%fused_computation.1 (p: f32[4,4]) -> f32[4,4] {
  %p = f32[4,4]{1,0} parameter(0)
  ROOT %d = f32[4,4]{1,0} dot(%p, %p), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (a: f32[4,4], v: f32[10]) -> f32[4,4] {
  %a = f32[4,4]{1,0} parameter(0)
  %v = f32[10]{0} parameter(1)
  %upd = f32[10]{0} multiply(%v, %v)
  %t = f32[4,4]{0,1} transpose(%a), dimensions={1,0}
  %e = f32[4,4]{1,0} exponential(%a)
  %f = f32[4,4]{1,0} fusion(%a), kind=kCustom, calls=%fused_computation.1
  ROOT %r = f32[4,4]{1,0} add(%f, %e)
}
"""
    c = classify(hlo, n_params=10)
    assert c["f"] == "matmul" and c["e"] == "softmax / exp" and c["upd"] == "optimizer (flat vector)"
    assert c["t"] == "layout (copy / transpose)" and c["r"] == "other elementwise / reduce"
