"""Linking's 8-bit scan (retrieval/link_scan.c) against the exact float scan: the same rows in the
same order (ties by row), the float scores, on synthetic and on real MiniLM vectors."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.native import build_library
from inference.native.build import FLAGS
from retrieval.link_scan import SOURCE, LinkScan, RowCodes, encode
from retrieval.vector_index import ExactVectorIndex, FaissVectorIndex, VectorConfig
from tests.helpers import SHARED_DATA

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="no C compiler: linking scans the float vectors")


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> LinkScan:
    return LinkScan(build_library([SOURCE], tmp_path_factory.mktemp("kernels"), "link_scan"))


def _clustered(n: int, d: int, seed: int, centres: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((centres, d))[rng.integers(0, centres, n)] + 0.5 * rng.standard_normal((n, d))
    x[::7] = x[3]  # exact duplicates: equal scores, which the row must order
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _assert_same(got, want, vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray, limits: list[int]) -> None:  # noqa: ANN001
    """``got`` is a top-k as good as the exact one: the same scores rank by rank, each the row's
    real score, from the allowed rows. Rows may differ only where two scores agree to float
    rounding (summation order differs between the kernel and BLAS: 0.23675640 against 0.23675634
    on the real sentences)."""
    assert len(got) == len(want)
    for q, limit, (found, scores), (ref_rows, ref_scores) in zip(queries, limits, got, want, strict=True):
        assert len(found) == len(ref_rows) == len(set(found.tolist()))
        assert set(found.tolist()) <= set(rows[rows < limit].tolist())
        real = vectors[found].astype(np.float64) @ q.astype(np.float64)
        np.testing.assert_allclose(scores, real, atol=1e-6)
        np.testing.assert_allclose(real, ref_scores, atol=1e-6)


def _exact(vectors: np.ndarray) -> ExactVectorIndex:
    ref = ExactVectorIndex(vectors.shape[1])
    ref.add(vectors)
    return ref


@pytest.mark.parametrize("dim", [384, 50, 8])  # full SIMD blocks; a 32-wide and a scalar tail; scalar only
@pytest.mark.parametrize("k", [1, 5, 20])
def test_scan_gives_the_exact_top_k(scan: LinkScan, dim: int, k: int) -> None:
    vectors = _clustered(900, dim, seed=dim + k)
    codes = RowCodes(dim)
    codes.extend(vectors)
    rows = np.arange(2, 900, 3, dtype=np.int64)  # a scope: every third row
    queries = vectors[[800, 803, 898, 5, 2]]
    limits = [800, 803, 898, 5, 2]  # each query among the rows before its own; the last has none
    got = scan.top_k(codes, vectors, rows, queries, k, limits)
    _assert_same(got, _exact(vectors).search_prefixes(queries, k, rows, limits), vectors, queries, rows, limits)
    assert [len(r) for r, _ in got] == [min(k, int(np.searchsorted(rows, lim))) for lim in limits]


def test_equal_scores_keep_the_earliest_rows(scan: LinkScan) -> None:
    """Twenty copies of one note among others: the five kept are the five earliest copies, as in
    the exact scan, whatever order the shortlist met them in."""
    vectors = _clustered(400, 384, seed=11)
    copies = np.arange(391, 11, -19)  # twenty rows, none of _clustered's own duplicates
    vectors[copies] = vectors[2]
    codes = RowCodes(384)
    codes.extend(vectors)
    rows = np.delete(np.arange(400, dtype=np.int64), 2)
    [(found, scores)] = scan.top_k(codes, vectors, rows, vectors[2:3], 5, [400])
    assert found.tolist() == sorted(copies.tolist())[:5]
    assert np.all(scores == scores[0])


def test_scan_gives_the_exact_top_k_on_real_sentences(scan: LinkScan, embedder) -> None:  # noqa: ANN001
    """MiniLM vectors of real chat turns: four haystacks are four scopes, each turn linked against
    the turns before it in its scope, as linking does."""
    with gzip.open(SHARED_DATA / "longmemeval_s_dev.json.gz", "rt") as fh:
        haystacks = json.load(fh)[:4]
    texts, scope = [], []
    for s, h in enumerate(haystacks):
        turns = [t["content"][:300] for session in h["haystack_sessions"] for t in session if t["role"] == "user"]
        texts += turns[:300]
        scope += [s] * len(turns[:300])
    vectors = np.ascontiguousarray(embedder.embed(texts), dtype=np.float32)
    codes = RowCodes(vectors.shape[1])
    codes.extend(vectors)
    ref = _exact(vectors)
    scope_of = np.array(scope)
    for s in range(len(haystacks)):
        rows = np.flatnonzero(scope_of == s).astype(np.int64)
        members = rows[1::2]
        limits = members.tolist()
        _assert_same(scan.top_k(codes, vectors, rows, vectors[members], 5, limits),
                     ref.search_prefixes(vectors[members], 5, rows, limits), vectors, vectors[members], rows, limits)


def test_faiss_index_links_from_codes_after_adds_and_a_reload(scan: LinkScan, tmp_path: Path) -> None:
    dim = 64
    vectors = _clustered(3000, dim, seed=7)
    cfg = VectorConfig(ann_threshold=1000, ivf_lists=8, ivf_probe=2)
    idx = FaissVectorIndex(dim, cfg, scan)
    for start in range(0, 3000, 700):
        idx.add(vectors[start : start + 700])
    rows = np.arange(1, 3000, 4, dtype=np.int64)
    queries, limits = vectors[[2999, 1500, 40]], [2999, 1500, 40]
    want = _exact(vectors).search_prefixes(queries, 5, rows, limits)
    _assert_same(idx.search_prefixes(queries, 5, rows, limits), want, vectors, queries, rows, limits)
    idx.save(tmp_path / "vectors.npz")
    back = FaissVectorIndex(dim, cfg, scan)
    back.load(tmp_path / "vectors.npz")
    _assert_same(back.search_prefixes(queries, 5, rows, limits), want, vectors, queries, rows, limits)


def test_codes_reconstruct_each_row_within_half_a_step() -> None:
    vectors = np.vstack([_clustered(50, 40, seed=1), np.zeros((1, 40), np.float32)])
    codes, scales = encode(vectors)
    back = (codes.astype(np.float32) - 128) * scales[:, None]
    assert np.all(np.abs(back - vectors) <= scales[:, None] / 2 + 1e-7)
    assert scales[-1] == 1 and np.all(codes[-1] == 128)  # a zero row: no division by zero
    assert codes.min() >= 1  # symmetric: -127..127 around 128


def test_scan_refuses_inputs_that_do_not_fit(scan: LinkScan) -> None:
    vectors = _clustered(100, 16, seed=3)
    codes = RowCodes(16)
    codes.extend(vectors[:99])
    rows = np.arange(100, dtype=np.int64)
    with pytest.raises(ValueError, match="disagree"):
        scan.top_k(codes, vectors, rows, vectors[:1], 5, [50])
    codes.extend(vectors[99:])
    with pytest.raises(ValueError, match="outside"):
        scan.top_k(codes, vectors, np.array([3, 100], np.int64), vectors[:1], 5, [101])
    with pytest.raises(ValueError, match="disagree"):
        scan.top_k(codes, vectors, rows, np.zeros((1, 8), np.float32), 5, [50])


def _cpu_flags() -> set[str]:
    from inference.native import cpu_flags

    return set(cpu_flags().split())


# -march targets for the kernel's paths, and the CPU flags each needs to run here: AVX-512 with
# VNNI is what -march=native picks on the machines we have; the others are what AVX2-only CPUs
# (the Zen 1 and Zen 3 EPYCs) and the baseline x86-64 build would run.
PATHS = {"x86-64": set(), "x86-64-v3": {"avx2", "fma"}, "skylake-avx512": {"avx512bw", "avx512f", "avx2"},
         "icelake-server": {"avx512bw", "avx512_vnni", "avx2"}}


def test_every_instruction_set_path_gives_the_same_neighbours(scan: LinkScan, tmp_path: Path, embedder) -> None:  # noqa: ANN001
    """The integer dot is exact on every path, so the shortlists, and so the results, agree; each
    build this CPU can run is compared with the native one on real sentences."""
    import platform
    import subprocess

    if platform.machine() != "x86_64":
        pytest.skip("the paths are x86 ones")
    with gzip.open(SHARED_DATA / "longmemeval_s_dev.json.gz", "rt") as fh:
        turns = [t["content"][:300] for s in json.load(fh)[5]["haystack_sessions"] for t in s][:400]
    vectors = np.ascontiguousarray(embedder.embed(turns), dtype=np.float32)
    codes = RowCodes(vectors.shape[1])
    codes.extend(vectors)
    rows = np.arange(len(vectors), dtype=np.int64)
    members = rows[20::7]
    native = scan.top_k(codes, vectors, rows, vectors[members], 5, members.tolist())
    runnable = [march for march, needs in PATHS.items() if needs <= _cpu_flags()]
    assert "x86-64" in runnable
    assert "-march=native" in FLAGS  # replaced by each target below
    cc = shutil.which("cc") or shutil.which("gcc")
    for march in runnable:
        lib = tmp_path / f"link_scan-{march}.so"
        flags = [f"-march={march}" if flag == "-march=native" else flag for flag in FLAGS]  # as shipped, but the target
        subprocess.run([cc, *flags, "-o", str(lib), str(SOURCE)], check=True, capture_output=True, timeout=120)
        built = LinkScan(lib).top_k(codes, vectors, rows, vectors[members], 5, members.tolist())
        for (got, got_scores), (want, want_scores) in zip(built, native, strict=True):
            assert got.tolist() == want.tolist(), march
            np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)
