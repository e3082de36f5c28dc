"""The "cpu" GEMMs on the native extension's pool (backend/native_blas.py `matmul`,
kernels/cpu/blas.cpp) against np.matmul.

Every large float32/float64 product of matmul, linear, the convolutions' im2col GEMMs and the
GRU's recurrent step goes there: blocks of rows or columns shared out over _C's pool, a
transposed operand read in place through BLAS's trans flag. The bound on the difference is
the one a dot product of length k guarantees, k * eps * (|a| @ |b|) per element, so it
holds whichever BLAS kernel or blocking a machine picks.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_like.backend import cpu, get_backend, native, native_blas

pytestmark = pytest.mark.skipif(not native_blas.available(), reason=native_blas.status())

RNG = np.random.default_rng(11)


def operand(shape, dtype, transposed: bool):
    """A random matrix (stack) of `shape`, stored transposed (a view) when asked."""
    if not transposed:
        return RNG.standard_normal(shape).astype(dtype)
    stored = RNG.standard_normal(shape[:-2] + shape[-2:][::-1]).astype(dtype)
    return np.swapaxes(stored, -1, -2)


def assert_gemm_close(ours, a, b):
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    bound = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    eps = np.finfo(a.dtype).eps
    assert ours.shape == exact.shape and ours.dtype == a.dtype
    assert np.all(np.abs(ours - exact) <= (a.shape[-1] + 2) * eps * bound)


# (a shape, b shape): above and below the pool's threshold, cut by rows and by columns,
# odd sizes, a batch, a batch broadcast from either side, and empty products
SHAPES = [((300, 200), (200, 100)), ((40, 500), (500, 300)), ((9, 4000), (4000, 32)),
          ((3, 130, 70), (3, 70, 90)), ((1, 130, 70), (4, 70, 90)), ((4, 130, 70), (70, 90)),
          ((130, 70), (4, 70, 90)), ((7, 5), (5, 3)), ((300, 0), (0, 200)), ((0, 64), (64, 9))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False),
                                                      (False, True), (True, True)])
def test_matmul_on_the_pool_matches_numpy(dtype, a_shape, b_shape, transpose_a, transpose_b):
    a, b = operand(a_shape, dtype, transpose_a), operand(b_shape, dtype, transpose_b)
    assert_gemm_close(native_blas.matmul(a, b), a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape, b_shape", SHAPES)
@pytest.mark.parametrize("transpose_a", [False, True])
def test_a_bias_is_added_by_the_gemm(dtype, a_shape, b_shape, transpose_a):
    a, b = operand(a_shape, dtype, transpose_a), operand(b_shape, dtype, True)
    bias = RNG.standard_normal(b_shape[-1]).astype(dtype)
    ours = native_blas.matmul(a, b, bias)
    # the bias is one more term of each dot product: inside the same bound, with |bias|
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64)) + bias
    bound = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)) + abs(bias)
    assert ours.shape == exact.shape and ours.dtype == a.dtype
    assert np.all(np.abs(ours - exact) <= (a.shape[-1] + 3) * np.finfo(dtype).eps * bound)


def test_the_native_gemm_fills_blocks_with_the_bias_on_every_thread(monkeypatch):
    calls = []
    run = native._C.matmul
    monkeypatch.setattr(native._C, "matmul", lambda *args: calls.append(args) or run(*args))
    threads = native.get_num_threads()
    native.set_num_threads(3)  # three blocks, above kGemmParallelWork (2^21 multiply-adds)
    try:
        # cut by rows (tall) and by columns (wide): every block starts from the bias
        for a_shape, b_shape in [((1024, 64), (64, 40)), ((40, 64), (64, 1024))]:
            a, b = operand(a_shape, np.float32, False), operand(b_shape, np.float32, False)
            bias = np.full(b_shape[1], 1e3, np.float32)
            np.testing.assert_allclose(native_blas.matmul(a, b, bias), np.matmul(a, b) + bias,
                                       rtol=1e-6, atol=1e-3)
    finally:
        native.set_num_threads(threads)
    assert len(calls) == 2 and all(call[-1] is not None for call in calls)


def test_a_bias_the_pool_cannot_take_is_added_after_numpys_product(monkeypatch):
    monkeypatch.setattr(native._C, "matmul", None)  # would fail if called
    a, b = operand((300, 200), np.float32, False), operand((200, 100), np.float32, False)
    for bias in (np.full(100, 0.1, np.float64), np.ones((300, 100), np.float32)):
        expected = np.matmul(a, b)
        expected += bias  # in place: a float64 bias keeps a float32 product float32
        np.testing.assert_array_equal(native_blas.matmul(a, b, bias), expected)


def test_large_gemms_go_to_the_pool_and_small_ones_to_numpy(monkeypatch):
    calls = []
    run = native._C.matmul
    monkeypatch.setattr(native._C, "matmul", lambda *args: calls.append(args) or run(*args))
    big = operand((256, 256), np.float32, False)
    native_blas.matmul(big, big.T)
    (stored_a, stored_b, transpose_a, transpose_b, bias), = calls
    assert (transpose_a, transpose_b, bias) == (False, True, None)  # b^T read in place
    assert np.shares_memory(stored_b, big)
    small = operand((8, 8), np.float32, False)
    native_blas.matmul(small, small)
    assert len(calls) == 1


@pytest.mark.parametrize("a, b", [
    (np.ones((300, 300), np.float32), np.ones((300, 300), np.float64)),  # mixed dtypes
    (np.ones((300, 300), np.int64), np.ones((300, 300), np.int64)),  # integers
    (np.ones(300, np.float32), np.ones((300, 300), np.float32)),  # a vector
    (np.ones((2, 2, 300, 30), np.float32), np.ones((2, 2, 30, 300), np.float32)),  # 4-D
])
def test_what_the_pool_does_not_take_is_numpys(monkeypatch, a, b):
    monkeypatch.setattr(native._C, "matmul", None)  # would fail if called
    np.testing.assert_array_equal(native_blas.matmul(a, b), np.matmul(a, b))


def test_a_shape_mismatch_is_numpys_error():
    with pytest.raises(ValueError, match="matmul"):
        native_blas.matmul(np.ones((300, 200), np.float32), np.ones((300, 200), np.float32))


def test_the_native_c_call_names_itself_on_bad_shapes():
    with pytest.raises(ValueError, match="matmul: the inner sizes differ"):
        native._C.matmul(np.ones((1, 3, 4)), np.ones((1, 5, 6)))
    with pytest.raises(ValueError, match="matmul: the batch sizes do not broadcast"):
        native._C.matmul(np.ones((2, 3, 4)), np.ones((3, 4, 6)))
    with pytest.raises(ValueError, match="matmul: the bias is not a vector of the product's 6"):
        native._C.matmul(np.ones((1, 3, 4)), np.ones((1, 4, 6)), bias=np.ones(5))


def test_the_cpu_table_runs_matmul_and_linear_on_the_pool():
    table = get_backend("cpu").kernels
    for name in ("matmul", "linear"):
        assert getattr(getattr(table, name), "native", False), name
    x, weight = operand((64, 200), np.float32, False), operand((300, 200), np.float32, False)
    bias = operand((300,), np.float32, False)
    expected = cpu.linear(x, weight, bias)
    np.testing.assert_allclose(table.linear(x, weight, bias), expected, rtol=1e-5, atol=1e-4)


# ---- the packed float32 GEMM (kernels/cpu/packed_gemm.cpp) ---------------------------------
# It takes float32 products of one matrix pair in the AVX-512 build; elsewhere BLAS does.
# Shapes past its blocking: 1024-deep panels (k of 2100: three, the last one short), blocks
# of up to 64 rows and tiles of 8 x 32 with tails, a short wide product cut into column
# ranges, and products it leaves to BLAS: narrower than a tile, shallower than 128, or with
# most of the last tile's columns padding.
PACKED_SHAPES = [((300, 2100), (2100, 70)), ((77, 129), (129, 1000)), ((8, 3000), (3000, 33)),
                 ((1000, 17), (17, 200)), ((2049, 128), (128, 40)), ((1000, 129), (129, 17)),
                 ((5, 3000), (3000, 300)), ((65, 300), (300, 260)), ((2048, 64), (64, 768))]


def packed_gemm_built() -> bool:
    return native.build_info().get("isa") == "x86-64-v4"


@pytest.fixture(params=["packed", "blas"])
def float32_gemm(request):
    """Which GEMM float32 products take: the packed one (where built) or BLAS's."""
    if request.param == "packed" and not packed_gemm_built():
        pytest.skip("the packed GEMM is built for x86-64-v4 (AVX-512) only")
    native._C.set_packed_gemm(request.param == "packed")
    yield request.param
    native._C.set_packed_gemm(True)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("a_shape, b_shape", PACKED_SHAPES + SHAPES[:3])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False),
                                                      (False, True), (True, True)])
def test_float32_products_on_either_gemm_match_numpy(float32_gemm, threads, a_shape, b_shape,
                                                      transpose_a, transpose_b):
    a = operand(a_shape, np.float32, transpose_a)
    b = operand(b_shape, np.float32, transpose_b)
    bias = RNG.standard_normal(b_shape[-1]).astype(np.float32)
    saved = native.get_num_threads()
    native.set_num_threads(threads)
    try:
        plain, biased = native_blas.matmul(a, b), native_blas.matmul(a, b, bias)
    finally:
        native.set_num_threads(saved)
    assert_gemm_close(plain, a, b)
    # the bias is one more term of each dot product (test_a_bias_is_added_by_the_gemm)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64)) + bias
    bound = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)) + abs(bias)
    assert np.all(np.abs(biased - exact) <= (a.shape[-1] + 3) * np.finfo(np.float32).eps * bound)


def test_the_avx512_build_runs_float32_products_on_the_packed_gemm():
    assert native._C.packed_gemm() == packed_gemm_built()
    native._C.set_packed_gemm(False)
    try:
        assert not native._C.packed_gemm()
    finally:
        native._C.set_packed_gemm(True)


@pytest.mark.parametrize("m, n, k, taken", [
    (1024, 1024, 1024, True), (8, 32, 128, True), (7, 1024, 1024, False),  # a tile's rows
    (1024, 31, 1024, False), (1024, 1024, 127, False),  # a tile's columns; 128 deep
    (1024, 65, 1024, False), (1024, 260, 1024, True),  # padding at most an eighth of n
    (8, 4096, 4096, True), (8, 4097, 4096, False)])  # op(b) of at most 2^24 floats, padded
def test_which_products_the_packed_gemm_takes(m, n, k, taken):
    if not packed_gemm_built():
        pytest.skip("the packed GEMM is built for x86-64-v4 (AVX-512) only")
    assert native._C.packed_gemm_takes(m, n, k) == taken
