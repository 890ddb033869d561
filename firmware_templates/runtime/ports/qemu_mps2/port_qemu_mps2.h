/*
 * port_qemu_mps2.h - pieces of the QEMU mps2 port that startup.c wires together.
 * The benchmark application never includes this; it sees only port.h.
 */
#ifndef PORT_QEMU_MPS2_H
#define PORT_QEMU_MPS2_H

void qemu_mps2_uart_init(void);
void qemu_mps2_counter_init(void);
void qemu_mps2_systick_handler(void);
/* Print a NUL-terminated string on QEMU's stderr (semihosting SYS_WRITE0). */
void qemu_mps2_semihost_write0(const char *text);

#endif /* PORT_QEMU_MPS2_H */
