/* The host HAL's shared state and helpers (dtg-hil: host_hal.c, host_hal_can.c, host_hal_uart.c, host_hal_tim.c);
 * not part of the API an application sees. */
#ifndef HOST_HAL_INTERNAL_H
#define HOST_HAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "stm32f4xx_hal.h"

#define HOST_PORTS 6                  /* USART1, USART2, USART3, UART4, UART5, USART6 */
#define HOST_TIMERS 8
#define HOST_RX_FIFO_DEPTH 3          /* bxCAN: three mailboxes per receive FIFO */
#define HOST_TX_MAILBOXES 3
#define HOST_FILTER_BANKS 28
#define HOST_SPIN_LIMIT 10000         /* HAL_GetTick() calls in a row that count as a busy-wait: the firmware is idle */
#define HOST_SPIN_STEP_MS 10          /* how far time moves for a firmware that busy-waits on HAL_GetTick() */
#define HOST_READ_TIMEOUT_MS 10000    /* bytes the harness announced must arrive within this (wall ms) */
#define HOST_TIM_CLOCK_HZ 84000000ULL /* APB1 timer clock of an STM32F407 at 168 MHz */

typedef struct {
  uint8_t *data;
  size_t len, cap;
} host_buffer;

typedef struct {
  int fd;
  host_buffer out;
  uint32_t out_pending; /* bytes written since the last idle report */
  UART_HandleTypeDef *rx;  /* armed Receive_IT, or NULL */
  UART_HandleTypeDef *tx_done; /* Transmit_IT/_DMA whose completion interrupt is pending */
  uint32_t overruns;
} host_port;

typedef struct {
  uint32_t id, ide, rtr, dlc;
  uint8_t data[8];
  uint32_t filter;
} host_frame;

typedef struct host_state {
  int ctrl_fd, can_fd, initialised;
  host_port ports[HOST_PORTS];
  host_buffer can_out;
  uint32_t can_frames_pending;
  uint32_t can_owed; /* frames the harness announced that are not delivered yet */
  char can_line[64];
  size_t can_line_len;
  CAN_HandleTypeDef *can;
  int can_started;
  uint32_t can_its;
  CAN_FilterTypeDef filters[HOST_FILTER_BANKS];
  host_frame fifo[HOST_RX_FIFO_DEPTH];
  uint32_t fifo_head, fifo_count, fifo_overruns;
  TIM_HandleTypeDef *timers[HOST_TIMERS];
  uint64_t timer_next_ms[HOST_TIMERS], timer_period_ms[HOST_TIMERS];
  uint64_t now_ms, delay_until_ms;
  uint32_t spins;
  int irq_disabled;
} host_state;

extern host_state host;
extern const char *const port_names[HOST_PORTS];

void host_fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void buffer_add(host_buffer *b, const void *data, size_t n);
int read_byte(int fd, const char *what);
void host_setup(void);
void host_idle(void);
void can_read_frames(uint32_t frames);     /* host_hal_can.c: the slcan lines the harness announced */
void uart_deliver(host_port *port, uint8_t byte); /* host_hal_uart.c: a byte received */
int deliver_tx_complete(void);             /* host_hal_uart.c: pending Transmit_IT/_DMA completions */
void i2c_set_register(uint32_t address, uint32_t reg, uint32_t value); /* host_hal_i2c.c: a device's register */
void i2c_set_present(uint32_t address, uint32_t present);              /* host_hal_i2c.c: a device (dis)connected */

#endif
