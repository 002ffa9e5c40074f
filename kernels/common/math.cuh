// Scalar math shared by kernel families.
#pragma once
#include <math_constants.h>

namespace sk {

constexpr float kLog2e = 1.4426950408889634f;  // log2(e): exp(x) = exp2(x * log2(e))
constexpr float kLn2 = 0.6931471805599453f;    // ln(2):   log(x) = log2(x) * ln(2)

}  // namespace sk
