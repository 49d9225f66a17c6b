"""Generate cext/nep_sph.h: the spherical-harmonic polynomials of the angular descriptors
(nep-reference.md section 2.6) in the three forms the engines use, hand-expanded so that
every constant is inlined (the same source runs on a GPU).

Usage: python cext/tools/gen_spherical_harmonics.py > cext/nep_sph.h

Two tables drive it. For every (l, m), 1 <= l <= NEP_MAX_L and 0 <= m <= l,
the z-part of Y_lm as the primitive integer polynomial proportional to d^m P_l/dz^m
(P_l the Legendre polynomial); Y_lm = zpoly_lm(z) (c_m, s_m) with c_m + i s_m = (x + i y)^m.
The normalisation of each Y_lm is GPUMD's 3-body weight W(l, m) (its C3B table, below),
from which nep_c3b and the three-body invariants nep_q3b are generated too.
tests/test_generated_sources.py checks that the checked-in header is this script's output.
"""

from fractions import Fraction
from math import gcd

MAX_L = 8

# GPUMD's 3-body weights W(l, m) (its C3B table, one value per m: the table repeats it for
# the cos and sin components), as GPUMD prints them, m = 0..l per row.
C3B = (
    # l = 1
    ("0.238732414637843", "0.119366207318922"),
    # l = 2
    ("0.099471839432435", "0.596831036594608", "0.149207759148652"),
    # l = 3
    ("0.139260575205408", "0.104445431404056", "1.044454314040563", "0.174075719006761"),
    # l = 4
    ("0.011190581936149", "0.223811638722978", "0.111905819361489", "1.566681471060845",
     "0.195835183882606"),
    # l = 5
    ("0.01367737792196", "0.102580334414698", "2.872249363611549", "0.119677056817148",
     "2.154187022708661", "0.215418702270866"),
    # l = 6
    ("0.004041043476943", "0.169723826031592", "0.106077391269745", "0.424309565078979",
     "0.127292869523694", "2.80044312952126", "0.233370260793438"),
    # l = 7
    ("0.004662742473395", "0.004079899664221", "0.024479397985326", "0.012239698992663",
     "0.538546755677165", "0.134636688919291", "3.500553911901575", "0.250039565135827"),
    # l = 8
    ("8.2569397966e-05", "0.005944996653579", "0.104037441437634", "0.762941237209318",
     "0.114441185581398", "5.950941650232678", "0.141689086910302", "4.250672607309055",
     "0.265667037956816"),
)


def legendre(l):
    """Coefficients of P_l(z), lowest power first, as Fractions."""
    p0, p1 = [Fraction(1)], [Fraction(0), Fraction(1)]
    if l == 0:
        return p0
    for n in range(1, l):
        # (n+1) P_{n+1} = (2n+1) z P_n - n P_{n-1}
        nxt = [Fraction(0)] * (n + 2)
        for k, c in enumerate(p1):
            nxt[k + 1] += Fraction(2 * n + 1, n + 1) * c
        for k, c in enumerate(p0):
            nxt[k] -= Fraction(n, n + 1) * c
        p0, p1 = p1, nxt
    return p1


def derivative(poly):
    return [k * c for k, c in enumerate(poly)][1:] or [Fraction(0)]


def z_polynomial(l, m):
    """The table entry: integer coefficients (lowest power first) of the z-part of Y_lm."""
    poly = legendre(l)
    for _ in range(m):
        poly = derivative(poly)
    denominator = 1
    for c in poly:
        denominator = denominator * c.denominator // gcd(denominator, c.denominator)
    ints = [int(c * denominator) for c in poly]
    common = 0
    for c in ints:
        common = gcd(common, c)
    ints = [c // common for c in ints]
    if ints[-1] < 0:
        ints = [-c for c in ints]
    return ints


def number(value):
    return f"((NEP_REAL){float(value)!r})"


def expression(poly):
    """C text of a polynomial in z of one parity: Horner in zz, times z when odd."""
    odd = len(poly) % 2 == 0  # degree len-1 odd
    even_coefficients = poly[1::2] if odd else poly[0::2]  # by power of zz, lowest first
    if odd and even_coefficients == [1]:
        return "z"
    if not any(even_coefficients):
        return number(0)
    coefficients = list(reversed(even_coefficients))
    text = number(coefficients[0])
    for c in coefficients[1:]:
        text = f"({text} * zz + {number(c)})"
    return text + " * z" if odd else text


def harmonics():
    """(l, m, kappa, zp text, dzp text) in kappa order."""
    kappa = 0
    for l in range(1, MAX_L + 1):
        for m in range(l + 1):
            poly = z_polynomial(l, m)
            yield l, m, kappa, expression(poly), expression(derivative(poly))
            kappa += 1 if m == 0 else 2


PROLOGUE = """    const NEP_REAL zz = z * z;
    NEP_REAL c[NEP_MAX_L + 1], s[NEP_MAX_L + 1];
{extra}    c[0] = (NEP_REAL)1; s[0] = (NEP_REAL)0; c[1] = x; s[1] = y;
    for (int m = 2; m <= L; ++m) {{
        c[m] = c[m - 1] * x - s[m - 1] * y;
        s[m] = s[m - 1] * x + c[m - 1] * y;
    }}
    (void)zz;
"""


def by_l(body, stop):
    """Group per-(l, m) text into the per-l blocks with the early exits."""
    out = []
    rows = list(harmonics())
    for l in range(1, MAX_L + 1):
        if l > 1:
            out.append(f"    if (L < {l}) {stop};\n")
        out.append("    {\n")
        for row in rows:
            if row[0] == l:
                out.append(body(*row))
        out.append("    }\n")
    return "".join(out)


def sph_value(l, m, k, zp, dzp):
    if m == 0:
        return f"        Y[{k}] = {zp};\n"
    return (f"        {{ const NEP_REAL zp = {zp};\n"
            f"          Y[{k}] = zp * c[{m}]; Y[{k + 1}] = zp * s[{m}]; }}\n")


def sph_contract(l, m, k, zp, dzp):
    if m == 0:
        return (f"        {{ const NEP_REAL zp = {zp}, dzp = {dzp};\n"
                f"          acc += H[{k}] * zp; gz += K[{k}] * dzp; }}\n")
    return (f"        {{ const NEP_REAL zp = {zp}, dzp = {dzp};\n"
            f"          const NEP_REAL kr = K[{k}], ki = K[{k + 1}];\n"
            f"          acc += H[{k}] * zp * c[{m}] + H[{k + 1}] * zp * s[{m}];\n"
            f"          const NEP_REAL mz = (NEP_REAL){m} * zp;\n"
            f"          gx += mz * (kr * c[{m - 1}] + ki * s[{m - 1}]);\n"
            f"          gy += mz * (ki * c[{m - 1}] - kr * s[{m - 1}]);\n"
            f"          gz += dzp * (kr * c[{m}] + ki * s[{m}]); }}\n")


def sph_grad(l, m, k, zp, dzp):
    if m == 0:
        return (f"        {{ const NEP_REAL zp = {zp}, dzp = {dzp};\n"
                f"          Y[{k}] = zp; dx[{k}] = (NEP_REAL)0; dy[{k}] = (NEP_REAL)0; "
                f"dz[{k}] = dzp; }}\n")
    a, b = k, k + 1
    return (f"        {{ const NEP_REAL zp = {zp}, dzp = {dzp};\n"
            f"          const NEP_REAL mz = (NEP_REAL){m} * zp;\n"
            f"          Y[{a}] = zp * c[{m}]; Y[{b}] = zp * s[{m}];\n"
            f"          dx[{a}] = mz * c[{m - 1}]; dx[{b}] = mz * s[{m - 1}];\n"
            f"          dy[{a}] = -mz * s[{m - 1}]; dy[{b}] = mz * c[{m - 1}];\n"
            f"          dz[{a}] = dzp * c[{m}]; dz[{b}] = dzp * s[{m}]; }}\n")


HEADER = """/*
 * Generated by cext/tools/gen_spherical_harmonics.py; do not edit.
 *
 * The spherical-harmonic polynomials Y_kappa(x, y, z), kappa = l^2-1+k for l = 1..L
 * (nep-reference.md section 2.6), expanded per (l, m) from the generator's table of
 * z-polynomials, and the 3-body weights nep_c3b with the three-body invariants nep_q3b from
 * its table of GPUMD's weights. Included by nep_maths.h (NEP_HD, NEP_REAL, NEP_MAX_L).
 */
#ifndef NEPZBL_NEP_SPH_H
#define NEPZBL_NEP_SPH_H

"""


def c3b_function():
    cases = []
    kappa = 0
    for l, row in enumerate(C3B, start=1):
        for m, value in enumerate(row):
            for _ in range(1 if m == 0 else 2):
                cases.append(f"    case {kappa}: return (NEP_REAL){value};\n")
                kappa += 1
    return ("/* The 3-body weight w_kappa (GPUMD's C3B table, kappa = l^2-1+k, k = 0..2l). */\n"
            "NEP_HD NEP_REAL nep_c3b(int kappa)\n{\n    switch (kappa) {\n" + "".join(cases)
            + "    default: return (NEP_REAL)0;\n    }\n}\n\n")


def q3b_function():
    out = ["/* The L three-body invariants of one channel: q[l-1] = w_{l,0} s_{l^2-1}^2\n"
           " * + 2 sum_{k>=1} w_{l,k} s_{l^2-1+k}^2 for l = 1..L. */\n"
           "NEP_HD void nep_q3b(int L, const NEP_REAL *s, NEP_REAL *q)\n{\n"]
    for l, row in enumerate(C3B, start=1):
        base = l * l - 1
        terms = []
        for m in range(1, l + 1):
            for k in (base + 2 * m - 1, base + 2 * m):
                terms.append(f"(NEP_REAL){row[m]} * s[{k}] * s[{k}]")
        out.append(f"    if (L < {l}) return;\n")
        out.append(f"    q[{l - 1}] = (NEP_REAL){row[0]} * s[{base}] * s[{base}]\n"
                   f"             + (NEP_REAL)2 * ({' + '.join(terms)});\n")
    out.append("}\n\n")
    return "".join(out)


def main():
    out = [HEADER]
    out.append("/* Y_kappa(x, y, z) for l = 1..L into Y[0 .. (L+1)^2-2]; (x, y, z) a unit vector. */\n"
               "NEP_HD void nep_sph(int L, NEP_REAL x, NEP_REAL y, NEP_REAL z, NEP_REAL *Y)\n{\n")
    out.append(PROLOGUE.format(extra=""))
    out.append(by_l(sph_value, "return"))
    out.append("}\n\n")
    out.append(
        "/* Fused contraction used by the force pass: *hy = sum_k H[k] Y_k(x,y,z) and\n"
        " * grad[0..2] = sum_k K[k] dY_k/d(x,y,z), the polynomial gradient with x, y, z treated as\n"
        " * independent variables, over k = 0 .. (L+1)^2-2. */\n"
        "NEP_HD void nep_sph_contract(int L, NEP_REAL x, NEP_REAL y, NEP_REAL z, const NEP_REAL *H,\n"
        "                             const NEP_REAL *K, NEP_REAL *hy, NEP_REAL *grad)\n{\n")
    out.append(PROLOGUE.format(
        extra="    NEP_REAL acc = (NEP_REAL)0, gx = (NEP_REAL)0, gy = (NEP_REAL)0, gz = (NEP_REAL)0;\n"))
    out.append(by_l(sph_contract, "goto done"))
    out.append("done:\n    *hy = acc; grad[0] = gx; grad[1] = gy; grad[2] = gz;\n}\n\n")
    out.append(
        "/* Y_k and its polynomial gradient (x, y, z independent) into Y, dx, dy, dz, each\n"
        " * (L+1)^2-1 long. */\n"
        "NEP_HD void nep_sph_grad(int L, NEP_REAL x, NEP_REAL y, NEP_REAL z, NEP_REAL *Y,\n"
        "                         NEP_REAL *dx, NEP_REAL *dy, NEP_REAL *dz)\n{\n")
    out.append(PROLOGUE.format(extra=""))
    out.append(by_l(sph_grad, "return"))
    out.append("}\n\n")
    out.append(c3b_function())
    out.append(q3b_function())
    out.append("#endif /* NEPZBL_NEP_SPH_H */\n")
    print("".join(out), end="")


if __name__ == "__main__":
    main()
