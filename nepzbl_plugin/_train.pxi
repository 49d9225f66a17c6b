# Training gradients (cext/nep_train.h): wrappers are added here.
