// Runtime ISA detection and dispatch. Filled once from CPUID and XCR0 (so zmm state is really
// enabled by the OS); the environment variable FERRY_MAX_ISA=scalar|avx2|avx512 caps it.
#pragma once
#include <string>
#include <vector>

namespace ferry {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

Isa active_isa();                        // best supported, capped by FERRY_MAX_ISA
std::vector<Isa> supported_isas();       // what the CPU can run, best first, ignoring the cap
const char* isa_name(Isa isa);

}  // namespace ferry
