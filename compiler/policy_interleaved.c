/* STUB: policy_interleaved pass, being written. */
#include "pp.h"
