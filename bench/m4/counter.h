// Executed-instruction counter for QEMU: run with `-icount shift=0`, every instruction advances
// the virtual clock by 1 ns, and SysTick counts down on the processor clock (CLKSOURCE = 1), so
// instructions = ticks x (1e9 / processor clock). The ratio is calibrated at run time against a
// loop of known length (CalibrationLoop) rather than assumed. SysTick is 24 bits: one span
// must stay under 2^24 ticks.
#ifndef BENCH_M4_COUNTER_H_
#define BENCH_M4_COUNTER_H_

#include <stdint.h>

namespace m4bench {

inline volatile uint32_t* SysTick() { return reinterpret_cast<volatile uint32_t*>(0xE000E010); }

inline void CounterStart() {
  SysTick()[0] = 0;         // CSR: stop
  SysTick()[1] = 0xFFFFFF;  // RVR
  SysTick()[2] = 0;         // CVR: any write clears it; reloads on the next tick
  SysTick()[0] = 5;         // CSR: enable, processor clock, no interrupt
}

inline uint32_t CounterNow() { return SysTick()[2]; }

// Ticks from `start` to `end` of the down-counter (one wrap at most).
inline uint32_t TicksBetween(uint32_t start, uint32_t end) {
  return (start - end) & 0xFFFFFFu;
}

// 2 + 2 x iterations instructions: `subs` and `bne` per iteration (Thumb-2, no memory access).
inline void CalibrationLoop(uint32_t iterations) {
  __asm volatile(
      "1: subs %0, %0, #1\n"
      "   bne 1b\n"
      : "+r"(iterations)
      :
      : "cc");
}

}  // namespace m4bench

#endif  // BENCH_M4_COUNTER_H_
