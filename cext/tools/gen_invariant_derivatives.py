"""Generate cext/nep_train_maths.h: the Hessian-vector products of the higher-order angular
invariants (nep-reference.md section 2.7), for the exact training gradients.

Usage: python cext/tools/gen_invariant_derivatives.py > cext/nep_train_maths.h

Each generated function nep_train_hvp_<name>(s, v, hvp) writes
hvp[k] = sum_m d2P/(ds_k ds_m) v_m for k = 0 .. NEP_TRAIN_HVP_<NAME>_SIZE - 1. The
polynomials are transcribed from the specification; tests/test_gradients.py checks them
(through the gradient) against finite differences, and the values and first derivatives the
engine uses come from cext/nep_maths.h.
"""

import re

import sympy as sp

S = sp.symbols("s0:24")
V = sp.symbols("v0:24")

C = (-0.007499480826664, -0.134990654879954, 0.067495327439977, 0.404971964639861,
     -0.809943929279723)
C5 = (0.026596810706114, 0.053193621412227, 0.026596810706114)
E = (0.027493550848847, 0.164961305093080, -0.013746775424423, 0.041240326273270,
     0.082480652546540)
F = (-0.008418146349617, -0.016836292699234, -0.033672585398469, -0.042090731748086,
     -0.067345170796937, -0.084181463496172, -0.168362926992344)
G = (0.008572620635186, 0.009644198214584, 0.019288396429168, 0.025717861905558,
     0.026789439484956, 0.032147327381947, 0.038576792858337, 0.128589309527790,
     0.192883964291685, 0.321473273819474)
H = (0.003645164295772, 0.004860219061029, 0.006075273826286, 0.018225821478859,
     0.024301095305146, 0.036451642957719, 0.042526916784005, 0.072903285915437,
     0.085053833568010, 0.255161500704030)


def coefficient_symbols(name, values):
    return [sp.Symbol(f"{name}{k}") for k in range(len(values))]


cC, cC5, cE, cF, cG, cH = (coefficient_symbols(n, v) for n, v in
                           (("C", C), ("Cf", C5), ("E", E), ("F", F), ("G", G), ("H", H)))
s = S

INVARIANTS = {
    "q222": (
        cC[0] * s[3] ** 3 + cC[1] * s[3] * (s[4] ** 2 + s[5] ** 2)
        + cC[2] * s[3] * (s[6] ** 2 + s[7] ** 2) + cC[3] * s[6] * (s[5] ** 2 - s[4] ** 2)
        + cC[4] * s[4] * s[5] * s[7],
        dict(zip(cC, C, strict=True)), 8,
    ),
    "q1111": (
        cC5[0] * s[0] ** 4 + cC5[1] * s[0] ** 2 * (s[1] ** 2 + s[2] ** 2)
        + cC5[2] * (s[1] ** 2 + s[2] ** 2) ** 2,
        dict(zip(cC5, C5, strict=True)), 3,
    ),
    "q112": (
        cE[0] * s[0] ** 2 * s[3] + cE[1] * s[0] * (s[1] * s[4] + s[2] * s[5])
        + cE[2] * s[3] * (s[1] ** 2 + s[2] ** 2) + cE[3] * s[6] * (s[1] ** 2 - s[2] ** 2)
        + cE[4] * s[1] * s[2] * s[7],
        dict(zip(cE, E, strict=True)), 8,
    ),
    "q123": (
        cF[6] * (s[12] * s[2] * s[4] - s[11] * s[2] * s[5] + s[1] * s[11] * s[4]
                 + s[1] * s[12] * s[5])
        + cF[5] * (s[0] * s[11] * s[6] + s[0] * s[12] * s[7])
        + cF[3] * (s[14] * s[2] * s[6] - s[13] * s[2] * s[7] + s[1] * s[13] * s[6]
                   + s[1] * s[14] * s[7])
        + cF[4] * (s[10] * s[0] * s[5] + s[0] * s[4] * s[9])
        + cF[1] * (s[10] * s[2] * s[3] + s[0] * s[3] * s[8] + s[1] * s[3] * s[9])
        + cF[0] * (s[10] * s[2] * s[6] - s[10] * s[1] * s[7] - s[2] * s[7] * s[9]
                   - s[1] * s[6] * s[9])
        - cF[2] * (s[2] * s[5] * s[8] + s[1] * s[4] * s[8]),
        dict(zip(cF, F, strict=True)), 15,
    ),
    "q233": (
        cG[0] * s[3] * s[8] ** 2
        + cG[1] * s[3] * (s[10] ** 2 + s[9] ** 2)
        + cG[2] * s[6] * (s[9] ** 2 - s[10] ** 2)
        + cG[3] * (s[4] * s[8] * s[9] + s[10] * s[5] * s[8])
        - cG[4] * s[3] * (s[13] ** 2 + s[14] ** 2)
        + cG[5] * (-s[14] * s[7] * s[9] - s[13] * s[6] * s[9] - s[10] * s[14] * s[6]
                   + s[10] * s[13] * s[7])
        + cG[6] * s[10] * s[7] * s[9]
        - cG[7] * (s[11] * s[6] * s[8] + s[12] * s[7] * s[8])
        + cG[8] * (s[11] * s[4] * s[9] + s[12] * s[5] * s[9] + s[10] * s[12] * s[4]
                   - s[10] * s[11] * s[5])
        + cG[9] * (s[12] * s[14] * s[4] + s[11] * s[14] * s[5] + s[13] * s[11] * s[4]
                   - s[13] * s[12] * s[5]),
        dict(zip(cG, G, strict=True)), 15,
    ),
    "q134": (
        -cH[0] * (s[10] * s[15] * s[2] + s[1] * s[15] * s[9])
        + cH[1] * s[0] * s[15] * s[8]
        + cH[2] * (-s[1] * s[13] * s[18] - s[1] * s[14] * s[19] - s[2] * s[14] * s[18]
                   + s[2] * s[13] * s[19])
        + cH[3] * (-s[10] * s[18] * s[2] + s[1] * s[10] * s[19] + s[1] * s[18] * s[9]
                   + s[2] * s[19] * s[9])
        + cH[4] * (s[1] * s[16] * s[8] + s[2] * s[17] * s[8])
        + cH[5] * (s[0] * s[10] * s[17] + s[0] * s[16] * s[9] - s[1] * s[11] * s[16]
                   - s[1] * s[12] * s[17] - s[2] * s[12] * s[16] + s[2] * s[11] * s[17])
        + cH[6] * (s[1] * s[13] * s[22] + s[1] * s[14] * s[23] - s[2] * s[14] * s[22]
                   + s[2] * s[13] * s[23])
        + cH[7] * (s[0] * s[11] * s[18] + s[0] * s[12] * s[19])
        + cH[8] * (s[0] * s[13] * s[20] + s[0] * s[14] * s[21])
        + cH[9] * (s[1] * s[11] * s[20] + s[1] * s[12] * s[21] - s[2] * s[12] * s[20]
                   + s[2] * s[11] * s[21]),
        dict(zip(cH, H, strict=True)), 24,
    ),
}


def c_code(expr):
    # squares as products: exact in either precision, where pow would take a float32 copy
    # through double
    return re.sub(r"pow\((\w+), 2\)", r"(\1*\1)", sp.ccode(expr))


def emit(name, poly, values, size):
    lines = [
        f"#define NEP_TRAIN_HVP_{name.upper()}_SIZE {size}",
        f"NEP_HD void nep_train_hvp_{name}(const NEP_REAL *s, const NEP_REAL *v, NEP_REAL *hvp)",
        "{",
    ]
    for sym, val in values.items():
        lines.append(f"    const NEP_REAL {sym} = (NEP_REAL){val!r};")
    grads = [sp.diff(poly, S[k]) for k in range(size)]
    for k in range(size):
        hvp = sp.expand(sum(sp.diff(grads[k], S[m]) * V[m] for m in range(size)))
        lines.append(f"    hvp[{k}] = {c_code(hvp)};")
    lines.append("}\n")
    return re.sub(r"\b([sv])(\d+)\b", r"\1[\2]", "\n".join(lines))


def main():
    out = [
        "/*",
        " * Generated by cext/tools/gen_invariant_derivatives.py; do not edit.",
        " *",
        " * Second derivatives for the training gradients (cext/nep_train.c, and the CUDA training",
        " * kernels through NEP_HD), which take values and first derivatives from nep_maths.h:",
        " * the Hessian-vector products",
        " * hvp[k] = sum_m d2P/(ds_k ds_m) v_m of the angular invariants P of",
        " * nep-reference.md section 2.7, for k = 0 .. NEP_TRAIN_HVP_<NAME>_SIZE - 1 (every",
        " * entry of that range is written). The invariants are cubic or quartic polynomials, so",
        " * this is exact algebra. The 3-body invariants have the diagonal Hessian",
        " * 2 w'_kappa and need no code here. Written in NEP_REAL (nep_maths.h: double unless",
        " * the includer defines it), like the rest of the per-atom maths: a float32 GPU copy",
        " * computes them in float32 (through double copies of s, v and hvp the float32",
        " * gradient kernel needed 255 registers and spilled 544 bytes; in float32, 244 and",
        " * none: nvcc 13.0, sm_90).",
        " */",
        "#ifndef NEPZBL_NEP_TRAIN_MATHS_H",
        "#define NEPZBL_NEP_TRAIN_MATHS_H",
        "",
        "#include \"nep_hd.h\"",
        "#include \"nep_maths.h\" /* NEP_REAL */",
        "",
    ]
    for name, (poly, values, size) in INVARIANTS.items():
        out.append(emit(name, poly, values, size))
    out.append("/* The s entries optional invariant `which` (enum nep_flag order) reads: the entries")
    out.append(" * nep_train_invariant_hvp writes. */")
    out.append("NEP_HD int nep_train_invariant_size(int which)")
    out.append("{")
    out.append("    switch (which) {")
    for k, name in enumerate(INVARIANTS):
        out.append(f"    case {k}: return NEP_TRAIN_HVP_{name.upper()}_SIZE;")
    out.append("    default: return 0;")
    out.append("    }")
    out.append("}")
    out.append("")
    out.append("/* The Hessian-vector product of optional invariant `which` (enum nep_flag order);")
    out.append(" * returns how many entries of hvp it wrote. */")
    out.append("NEP_HD int nep_train_invariant_hvp(int which, const NEP_REAL *s, const NEP_REAL *v,")
    out.append("                                   NEP_REAL *hvp)")
    out.append("{")
    out.append("    switch (which) {")
    for k, name in enumerate(INVARIANTS):
        out.append(f"    case {k}: nep_train_hvp_{name}(s, v, hvp); break;")
    out.append("    default: return 0;")
    out.append("    }")
    out.append("    return nep_train_invariant_size(which);")
    out.append("}")
    out.append("")
    out.append("#endif")
    print("\n".join(out))


if __name__ == "__main__":
    main()
