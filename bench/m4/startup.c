/* Start-up for the kernel benchmark on QEMU's mps2-an386: copy .data, zero .bss, enable the
 * FPU, open newlib's semihosting handles (printf reaches the host), run main, exit with its
 * status through semihosting. */
#include <stdint.h>
#include <string.h>

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top;
extern int main(void);
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);
extern void exit(int);

void Reset_Handler(void) {
  memcpy(&__data_start__, &__etext, (size_t)((char*)&__data_end__ - (char*)&__data_start__));
  memset(&__bss_start__, 0, (size_t)((char*)&__bss_end__ - (char*)&__bss_start__));
  *(volatile uint32_t*)0xE000ED88 |= (0xFu << 20); /* CPACR: CP10, CP11 full access */
  __asm volatile("dsb\n isb");
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

static void Halt(void) {
  for (;;) {
  }
}

__attribute__((section(".vectors"), used)) void* const kVectors[16] = {
    &__stack_top, (void*)Reset_Handler, (void*)Halt, (void*)Halt, (void*)Halt, (void*)Halt,
    (void*)Halt,  0, 0, 0, 0, (void*)Halt, (void*)Halt, 0, (void*)Halt, (void*)Halt};

void _init(void) {}
void _fini(void) {}
