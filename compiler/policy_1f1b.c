/* STUB: policy_1f1b pass, being written. */
#include "pp.h"
