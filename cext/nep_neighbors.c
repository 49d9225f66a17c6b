/* placeholder: filled in by its owner */
typedef int nepzbl_placeholder_nep_neighbors;
