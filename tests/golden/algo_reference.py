"""Independent PyTorch reference for the layer solvers (workers/engine/algorithms),
written from the papers; imported by algo_fixtures.py and bench/solvers/reference_bench.py.

  GPTQ:      Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative
             Pre-trained Transformers", 2022.
  SparseGPT: Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately
             Pruned in One-Shot", 2023.
  Wanda:     Sun et al., "A Simple and Effective Pruning Approach for Large Language
             Models", 2023.

W is [rows = out, cols = in] float32, H = 2 X X^T / n is [cols, cols]. Conventions that
the C++ shares (and that a test would catch if either side changed them):
  * grid: maxq = 2^bits - 1; asym: scale = (max(x,0) - min(x,0)) / maxq, zero =
    round(-min/scale); sym: amax = max|x|, scale = 2 amax / maxq, zero = (maxq + 1) / 2;
    an all-zero group gets the range [-1, 1]. q = clamp(round(x / scale) + zero, 0, maxq),
    value = scale * (q - zero); round is half-to-even. 0 is exactly representable
    (but on an asymmetric lattice, below).
  * the grid of a group is computed when the sweep reaches its first column, from the
    current (error-updated) weights of the group with already-pruned entries as 0;
    static groups (act-order) are computed up front on the unpermuted weights.
  * lazy blocks end at multiples of `block` and also just before a group start whose
    group would cross the block end, so "current" above is exact; N:M needs block % m ==
    0 and group % m == 0.
  * pruning order: smallest score first, ties by lower index (stable sort); unstructured
    prunes round(sparsity * count) entries per block (all rows) or per row of a block.
  * N:M keeps n of every m consecutive inputs.
  * fp8 (bits "fp8", E4M3): per row scale = the smallest fp16 >= max|x| / 448 (1 for
    an all-zero row), zero 0, value = scale * float8_e4m3fn(clamp(x / scale, +-448)),
    code the E4M3 byte (PyTorch's cast, round half to even).
  * scale_bits (k-quant double quantization, ggml's k-quant layouts): the scales of
    the groups in each run of 256 inputs of a row become d * sc, d the smallest fp16
    value >= (largest scale of a group that is not all zero) / smax (1 when all are),
    sc = clamp(round(scale / d), 1, smax), smax = 2^(scale_bits - 1) - 1 (symmetric) or
    2^scale_bits - 1 (asymmetric); all-zero groups get d. Asymmetric grids also put each
    group's -min(x, 0) on dmin * m (dmin likewise from the largest, m in [0, smax]) and
    take zero = dmin * m / scale, a fractional zero (all-zero groups: zero 0); codes are
    round(x / scale + zero). Static groups: on the up-front grids. During the sweep: the
    steps are computed when the sweep reaches the super-group's first column, from the
    grids of its groups on the current weights; each group's grid is moved onto them
    at the group's start.
"""
import math

import torch


def prune_count(count, sparsity):
    return min(count, int(math.floor(sparsity * count + 0.5)))


def grid_params(x, bits, sym):
    """Per-row scale and zero of x [rows, k]."""
    if bits == "fp8":
        amax = x.abs().max(1).values
        empty = amax == 0
        scale = torch.where(empty, torch.ones_like(amax), half_ceil(amax / 448.0))
        return scale, torch.zeros_like(scale)
    maxq = 2 ** bits - 1
    xmin = torch.clamp(x.min(1).values, max=0)
    xmax = torch.clamp(x.max(1).values, min=0)
    if sym:
        xmax = torch.maximum(-xmin, xmax)
        xmin = -xmax
    empty = (xmin == 0) & (xmax == 0)
    xmin[empty], xmax[empty] = -1, 1
    scale = (xmax - xmin) / maxq
    zero = torch.full_like(scale, (maxq + 1) // 2) if sym else torch.round(-xmin / scale)
    return scale, zero


def half_ceil(x):
    """The smallest fp16 value >= x (x > 0, float32), elementwise, as float32."""
    h = x.to(torch.float16)
    bits = h.view(torch.int16)  # positive halves: bits + 1 is the next value up
    h = torch.where(h.to(torch.float32) < x, (bits + 1).view(torch.float16), h)
    return h.to(torch.float32)


def lattice_max(scale_bits, sym):
    return 2 ** (scale_bits - 1) - 1 if sym else 2 ** scale_bits - 1


def lattice_step(largest, smax):
    return torch.where(largest > 0, half_ceil(largest / smax), torch.ones_like(largest))


def grid_min(x):
    """-min(x, 0) per row of x [rows, k]: what an asymmetric lattice puts on dmin * m."""
    return -torch.clamp(x.min(1).values, max=0)


def super_steps(scales, mins, empties, scale_bits, sym):
    """(d, dmin) [rows] of one super-group from its groups' [rows, n] scales and mins."""
    smax = lattice_max(scale_bits, sym)
    d = lattice_step(torch.where(empties, torch.zeros_like(scales), scales).max(1).values, smax)
    dmin = lattice_step(torch.where(empties, torch.zeros_like(mins), mins).max(1).values, smax)
    return d, dmin


def on_lattice(scale, zero, mn, empty, d, dmin, scale_bits, sym):
    """A group's (scale, zero) on the lattice: scale -> d * sc; asymmetric: min -> dmin * m
    and zero = dmin * m / scale (fractional); all-zero groups get d (and zero 0)."""
    smax = lattice_max(scale_bits, sym)
    scale = torch.where(empty, d, d * torch.clamp(torch.round(scale / d), 1, smax))
    if sym:
        return scale, zero
    m = torch.clamp(torch.round(mn / dmin), 0, smax)
    return scale, torch.where(empty, torch.zeros_like(zero), (dmin * m) / scale)


def lattice_grid(w, group, bits, sym, scale_bits):
    """(scales, zeros) [rows, groups] of contiguous groups of w, on their super-groups'
    lattices when scale_bits is set."""
    cols = w.shape[1]
    parts = [w[:, c:c + group] for c in range(0, cols, group)]
    ps = [grid_params(x, bits, sym) for x in parts]
    scales, zeros = torch.stack([p[0] for p in ps], 1), torch.stack([p[1] for p in ps], 1)
    if not scale_bits:
        return scales, zeros
    mins = torch.stack([grid_min(x) for x in parts], 1)
    empties = group_empties(w, group)
    per = 256 // group
    for g0 in range(0, scales.shape[1], per):
        sl = slice(g0, g0 + per)
        d, dmin = super_steps(scales[:, sl], mins[:, sl], empties[:, sl], scale_bits, sym)
        scales[:, sl], zeros[:, sl] = on_lattice(scales[:, sl], zeros[:, sl], mins[:, sl],
                                                 empties[:, sl], d[:, None], dmin[:, None],
                                                 scale_bits, sym)
    return scales, zeros


def quantize(x, scale, zero, bits):
    """Codes and values of x [rows] on per-row grids: round(x / scale + zero), the zero's
    integer part added after rounding (exactly round(x / scale) + zero for integer zeros).
    bits "fp8": PyTorch's float8_e4m3fn cast of x / scale clamped to +-448 (codes its
    bytes, a value that rounds to zero as +0), value scale * that."""
    if bits == "fp8":
        v = torch.clamp(x / scale, -448.0, 448.0).to(torch.float8_e4m3fn).to(torch.float32)
        v = v + 0.0  # -0 -> +0
        return v.to(torch.float8_e4m3fn).view(torch.uint8).to(torch.float32), scale * v
    zi = torch.floor(zero)
    q = torch.clamp(torch.round(x / scale + (zero - zi)) + zi, 0, 2 ** bits - 1)
    return q, scale * (q - zero)


def hinv_upper(h, percdamp):
    """Dead inputs fixed (H_jj = 0 -> 1), damped, then the upper Cholesky factor U of
    H^-1 = U^T U: row i of U holds the OBS update of column i onto later columns.
    Computed in float64 and rounded to float32 (as the C++ does)."""
    h = h.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h += percdamp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0])
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    return u.float()


def block_bounds(cols, block, group):
    """Lazy-update blocks; `group` > 0 for groups decided during the sweep."""
    out, i1 = [], 0
    while i1 < cols:
        i2 = min(i1 + block, cols)
        if group > 0:
            last = (i2 - 1) // group * group
            if i1 < last and min(last + group, cols) > i2:
                i2 = last
        out.append((i1, i2))
        i1 = i2
    return out


def obs_sweep(w, u, block, prune=None, quant=None, fixed=None, static=None, gidx=None):
    """The shared column sweep. w [rows, cols] (modified copy returned), u = hinv_upper.
    prune: None | ("block"|"row", sparsity) | ("nm", n, m). quant: None | (bits, group,
    sym) with group -1 for per-channel. fixed: bool [rows, cols] of entries forced to 0.
    static: (scale, zero) [rows, groups] used with gidx [cols] instead of dynamic grids."""
    w = w.clone()
    rows, cols = w.shape
    pruned = fixed.clone() if fixed is not None else torch.zeros_like(w, dtype=torch.bool)
    codes = torch.zeros_like(w)
    bits, group, sym = quant[:3] if quant else (0, 0, False)
    scale_bits = quant[3] if quant and len(quant) > 3 else 0
    steps = (torch.ones(rows), torch.ones(rows))
    dyn = group if (quant and static is None and group > 0) else 0
    if prune and prune[0] == "nm":
        block -= block % prune[2]
    groups = max(1, math.ceil(cols / group)) if quant and group > 0 else 1
    scales, zeros = torch.zeros(rows, groups), torch.zeros(rows, groups)
    if gidx is None:
        gidx = torch.tensor([c // group if group > 0 else 0 for c in range(cols)])
    for i1, i2 in block_bounds(cols, block, dyn):
        w1, d = w[:, i1:i2].clone(), torch.diag(u)[i1:i2]
        err = torch.zeros_like(w1)
        if prune and prune[0] in ("block", "row"):
            s = w1 ** 2 / d[None] ** 2
            if prune[0] == "block":
                idx = torch.argsort(s.flatten(), stable=True)[:prune_count(s.numel(), prune[1])]
                blk = pruned[:, i1:i2].flatten()
                blk[idx] = True
                pruned[:, i1:i2] = blk.view(rows, i2 - i1)
            else:
                idx = torch.argsort(s, dim=1, stable=True)[:, :prune_count(i2 - i1, prune[1])]
                pruned[:, i1:i2] |= torch.zeros_like(s, dtype=torch.bool).scatter_(1, idx, True)
        for i in range(i2 - i1):
            c = i1 + i
            if prune and prune[0] == "nm" and c % prune[2] == 0:
                n, m = prune[1], prune[2]
                s = w1[:, i:i + m] ** 2 / d[i:i + m][None] ** 2
                idx = torch.argsort(s, dim=1, stable=True)[:, :m - n]
                pruned[:, c:c + m] |= torch.zeros_like(s, dtype=torch.bool).scatter_(1, idx, True)
            if quant and static is None and (c == 0 if group <= 0 else c % group == 0):
                span = cols - c if group <= 0 else min(group, cols - c)
                cur = torch.cat([w1[:, i:], w[:, i2:]], 1)[:, :span]
                assert i == 0 or span <= i2 - c
                g = gidx[c]
                cur = cur * ~pruned[:, c:c + span]
                scales[:, g], zeros[:, g] = grid_params(cur, bits, sym)
                if scale_bits:
                    if c % 256 == 0:
                        sup = torch.cat([w1[:, i:], w[:, i2:]], 1)[:, :min(256, cols - c)]
                        sup = sup * ~pruned[:, c:c + sup.shape[1]]
                        sc_, ze_ = lattice_grid(sup, group, bits, sym, 0)
                        steps = super_steps(sc_, torch.stack(
                            [grid_min(sup[:, k:k + group]) for k in range(0, sup.shape[1], group)],
                            1), group_empties(sup, group), scale_bits, sym)
                    scales[:, g], zeros[:, g] = on_lattice(
                        scales[:, g], zeros[:, g], grid_min(cur), (cur == 0).all(1), steps[0],
                        steps[1], scale_bits, sym)
            x = w1[:, i] * ~pruned[:, c]
            q = x
            if quant:
                sc, ze = (static if static is not None else (scales, zeros))
                code, q = quantize(x, sc[:, gidx[c]], ze[:, gidx[c]], bits)
                codes[:, c] = code
            e = (w1[:, i] - q) / d[i]
            w1[:, i + 1:] -= e[:, None] * u[c, i1 + i + 1:i2][None]
            err[:, i] = e
            w1[:, i] = q
        w[:, i1:i2] = w1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    if static is not None:
        scales, zeros = static
    return w, pruned, codes, scales, zeros


def group_empties(w, group):
    return torch.stack([(w[:, c:c + group] == 0).all(1) for c in range(0, w.shape[1], group)], 1)


def gptq(w, h, bits, group=-1, sym=True, act_order=False, static_groups=False, block=128,
         percdamp=0.01, preserve_zeros=True, scale_bits=0):
    """Returns (w', codes, scales, zeros, gidx) in the original column order."""
    w, h = w.clone(), h.clone()
    cols = w.shape[1]
    dead = torch.diag(h) == 0
    w[:, dead] = 0
    # an asymmetric lattice has no exact 0: its zero weights are quantized like the rest
    fixed = (w == 0) if preserve_zeros and not (scale_bits and not sym) else None
    static = None
    gidx = torch.tensor([c // group if group > 0 else 0 for c in range(cols)])
    if static_groups and group > 0:
        static = lattice_grid(w, group, bits, sym, scale_bits)
    perm = torch.arange(cols)
    if act_order:
        hd = torch.diag(h).clone()
        hd[dead] = 1
        perm = torch.argsort(hd, descending=True, stable=True)
    u = hinv_upper(h[perm][:, perm], percdamp)
    sweep_gidx = gidx[perm] if static is not None else None
    wq, _, codes, scales, zeros = obs_sweep(
        w[:, perm], u, block, quant=(bits, group, sym, scale_bits),
        fixed=fixed[:, perm] if fixed is not None else None, static=static, gidx=sweep_gidx)
    inv = torch.argsort(perm)
    if static is None and group > 0:
        gidx = (torch.arange(cols) // group)[inv]
    return wq[:, inv], codes[:, inv], scales, zeros, gidx


def sparsegpt(w, h, sparsity=0.5, n=0, m=0, scope="block", block=128, percdamp=0.01,
              quant=None):
    """Returns (w', pruned mask, codes, scales, zeros); quant = (bits, group, sym)."""
    w = w.clone()
    w[:, torch.diag(h) == 0] = 0
    prune = ("nm", n, m) if n else (scope, sparsity)
    return obs_sweep(w, hinv_upper(h, percdamp), block, prune=prune, quant=quant)


def rtn(w, bits, group=-1, sym=True, scale_bits=0):
    """Round-to-nearest on the same grid: (w', codes, scales, zeros)."""
    cols = w.shape[1]
    g = group if group > 0 else cols
    scales, zeros = lattice_grid(w, g, bits, sym, scale_bits)
    out, codes = w.clone(), torch.zeros_like(w)
    for c in range(0, cols, g):
        for j in range(c, min(c + g, cols)):
            codes[:, j], out[:, j] = quantize(w[:, j], scales[:, c // g], zeros[:, c // g], bits)
    return out, codes, scales, zeros


def wanda(w, h, sparsity=0.5, n=0, m=0):
    """Prunes by |W_ij| * ||X_j|| (||X_j|| ~ sqrt(H_jj)) per output row; returns the mask."""
    s = w.abs() * torch.sqrt(torch.diag(h))[None]
    pruned = torch.zeros_like(w, dtype=torch.bool)
    if n:
        for c in range(0, w.shape[1], m):
            idx = torch.argsort(s[:, c:c + m], dim=1, stable=True)[:, :m - n]
            pruned[:, c:c + m] = torch.zeros_like(s[:, c:c + m], dtype=torch.bool).scatter_(
                1, idx, True)
    else:
        idx = torch.argsort(s, dim=1, stable=True)[:, :prune_count(w.shape[1], sparsity)]
        pruned.scatter_(1, idx, True)
    return pruned


def relative_error(w, w_new, h):
    """||W X - W' X||^2 / ||W X||^2 = tr(D H D^T) / tr(W H W^T), D = W - W' (float64)."""
    w, d, h = w.double(), (w - w_new).double(), h.double()
    return float(torch.sum((d @ h) * d) / torch.sum((w @ h) * w))
