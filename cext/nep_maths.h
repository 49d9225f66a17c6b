/* placeholder: the per-pair maths shared by the C and CUDA engines (see cext/nep.h) */
#ifndef NEPZBL_NEP_MATHS_H
#define NEPZBL_NEP_MATHS_H
#endif
