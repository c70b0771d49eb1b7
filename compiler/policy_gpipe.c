/* STUB: policy_gpipe pass, being written. */
#include "pp.h"
