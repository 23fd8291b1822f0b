/*
 * dtg-hil's host STM32 HAL (docs/firmware.md): ST's HAL API on a Linux host, driven by the harness.
 *
 * The firmware runs as its own process. The harness hands it file descriptors in the environment:
 *   DTG_HOST_CTRL_FD     the control channel (a socketpair): time and idleness, one text line per message;
 *   DTG_HOST_CAN1_FD     CAN1: the device end of a pty speaking the slcan (Lawicel) protocol, which the harness
 *                        opens with python-can's slcan driver: frames the firmware transmits go out as t/T lines,
 *                        t/T lines from the harness are frames received off the bus;
 *   DTG_HOST_USARTn_FD   each USART/UART (USART1, USART2, ...): the device end of a pty.
 *
 * Time is the harness's scenario clock, in whole milliseconds: HAL_GetTick() returns it, and it moves only when the
 * harness says so. When the firmware has nothing to do (__WFI(), HAL_Delay(), or HAL_GetTick() polled
 * HOST_SPIN_LIMIT times in a row without any other HAL call) it reports "I <next_due_ms> <can_frames_out>
 * <usart1_bytes_out> ... <usart6_bytes_out>" and waits for "A <t_ms> <can_frames_in> <usart1_bytes_in> ...": the
 * harness moves time to t_ms and says how many frames (slcan lines t/T/r/R) and bytes it wrote to each port, which the
 * HAL reads and delivers as interrupts (HAL_CAN_RxFifo0MsgPendingCallback, HAL_UART_RxCpltCallback) before the timers
 * due by t_ms (HAL_TIM_PeriodElapsedCallback). next_due_ms is the earliest timer expiry or HAL_Delay end (-1: none).
 * Before the "A" line the harness may send the unit's sensors at the new time: "R <address> <register> <value>" and
 * "D <address> <0|1>", an I2C device's register and whether the device answers (host_hal_i2c.c).
 * End of the control channel ends the process (exit 0).
 */
#include "stm32f4xx_hal.h"

#include "host_hal_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


__IO uint32_t uwTick;
uint32_t SystemCoreClock = 168000000U;

CAN_TypeDef host_CAN1 = {0}, host_CAN2 = {1};
USART_TypeDef host_USART1 = {0}, host_USART2 = {1}, host_USART3 = {2}, host_UART4 = {3}, host_UART5 = {4},
              host_USART6 = {5};
TIM_TypeDef host_TIM2 = {0}, host_TIM3 = {1}, host_TIM4 = {2}, host_TIM5 = {3}, host_TIM6 = {4}, host_TIM7 = {5};
GPIO_TypeDef host_GPIOA = {0}, host_GPIOB = {1}, host_GPIOC = {2}, host_GPIOD = {3}, host_GPIOE = {4},
             host_GPIOH = {5};

const char *const port_names[HOST_PORTS] = {"USART1", "USART2", "USART3", "UART4", "UART5", "USART6"};

host_state host;

void host_fatal(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fprintf(stderr, "host HAL: ");
  vfprintf(stderr, fmt, args);
  fprintf(stderr, "\n");
  va_end(args);
  exit(3);
}

void buffer_add(host_buffer *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    uint8_t *grown = realloc(b->data, cap);
    if (!grown) host_fatal("out of memory");
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
}

static void write_all(int fd, const uint8_t *data, size_t n, const char *what) {
  while (n > 0) {
    ssize_t done = write(fd, data, n);
    if (done < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, HOST_READ_TIMEOUT_MS) <= 0) host_fatal("%s: nobody reads (write timed out)", what);
        continue;
      }
      host_fatal("%s: write failed: %s", what, strerror(errno));
    }
    data += done;
    n -= (size_t)done;
  }
}

/* Reads are buffered per file descriptor: one system call takes whatever the harness has written. */
static struct {
  int fd;
  size_t pos, len;
  uint8_t data[4096];
} readers[1 + 1 + HOST_PORTS];

int read_byte(int fd, const char *what) {
  size_t r = 0;
  while (r < sizeof readers / sizeof readers[0] && readers[r].fd != fd && readers[r].fd != 0) r++;
  if (r == sizeof readers / sizeof readers[0]) host_fatal("%s: too many ports", what);
  readers[r].fd = fd; /* fd 0 is stdin, which the HAL never reads: 0 marks a free slot */
  if (readers[r].pos < readers[r].len) return readers[r].data[readers[r].pos++];
  for (;;) {
    ssize_t got = read(fd, readers[r].data, sizeof readers[r].data);
    if (got > 0) {
      readers[r].len = (size_t)got;
      readers[r].pos = 1;
      return readers[r].data[0];
    }
    if (got == 0) return -1;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) host_fatal("%s: read failed: %s", what, strerror(errno));
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, HOST_READ_TIMEOUT_MS) <= 0) host_fatal("%s: bytes announced by the harness did not arrive", what);
  }
}

static int env_fd(const char *name) {
  const char *value = getenv(name);
  if (value == NULL || *value == '\0') return -1;
  return atoi(value);
}

void host_setup(void) {
  if (host.initialised) return;
  host.initialised = 1;
  host.ctrl_fd = env_fd("DTG_HOST_CTRL_FD");
  if (host.ctrl_fd < 0)
    host_fatal("DTG_HOST_CTRL_FD is not set: this build runs under dtg-hil (stm32: {kind: host}), see docs/firmware.md");
  host.can_fd = env_fd("DTG_HOST_CAN1_FD");
  for (int i = 0; i < HOST_PORTS; i++) {
    char name[32];
    snprintf(name, sizeof name, "DTG_HOST_%s_FD", port_names[i]);
    host.ports[i].fd = env_fd(name);
  }
  host.delay_until_ms = UINT64_MAX;
  int fds[1 + HOST_PORTS];
  fds[0] = host.can_fd;
  for (int i = 0; i < HOST_PORTS; i++) fds[1 + i] = host.ports[i].fd;
  for (int i = 0; i < 1 + HOST_PORTS; i++) /* writes that would block wait in poll(): see write_all, read_byte */
    if (fds[i] >= 0) fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
}

static uint64_t next_due_ms(void) {
  uint64_t due = host.delay_until_ms;
  for (int i = 0; i < HOST_TIMERS; i++)
    if (host.timers[i] != NULL && host.timer_next_ms[i] < due) due = host.timer_next_ms[i];
  return due;
}

/* Hand the ports what they take without blocking (`partial`), or all of it; what is written leaves the buffer. */
static void flush_buffer(int fd, host_buffer *b, const char *what, int partial) {
  size_t done = 0;
  while (partial && done < b->len) {
    ssize_t n = write(fd, b->data + done, b->len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (size_t)n;
  }
  if (!partial) {
    write_all(fd, b->data, b->len, what);
    done = b->len;
  }
  memmove(b->data, b->data + done, b->len - done);
  b->len -= done;
}

static void flush_outputs(int partial) {
  if (host.can_out.len) flush_buffer(host.can_fd, &host.can_out, "CAN1 (slcan)", partial);
  for (int i = 0; i < HOST_PORTS; i++) {
    host_port *p = &host.ports[i];
    if (p->out.len) flush_buffer(p->fd, &p->out, port_names[i], partial);
  }
}

/* The firmware is idle: report, wait for the harness to move time on, deliver what it sent and the timers due. */
void host_idle(void) {
  char line[256];
  if (deliver_tx_complete()) return; /* a pending interrupt wakes the core at once */
  if (host.can_owed > 0) { /* frames of a burst arrive one interrupt at a time: the main loop runs between them */
    host.can_owed--;
    can_read_frames(1);
    return;
  }
  uint64_t due = next_due_ms();
  if (host.spins >= HOST_SPIN_LIMIT && host.now_ms + HOST_SPIN_STEP_MS < due)
    due = host.now_ms + HOST_SPIN_STEP_MS; /* a busy-wait on HAL_GetTick() waits for time itself to move */
  int n = snprintf(line, sizeof line, "I %lld %u", due == UINT64_MAX ? -1LL : (long long)due, host.can_frames_pending);
  for (int i = 0; i < HOST_PORTS; i++) {
    n += snprintf(line + n, sizeof line - (size_t)n, " %u", host.ports[i].out_pending);
    host.ports[i].out_pending = 0;
  }
  host.can_frames_pending = 0;
  line[n++] = '\n';
  /* The ports first, as far as their buffers take it without blocking, so the harness finds the bytes there when it
   * reads the report; then the report; then the rest, while the harness reads. */
  flush_outputs(1);
  host.spins = 0;
  write_all(host.ctrl_fd, (const uint8_t *)line, (size_t)n, "control channel");
  flush_outputs(0);
  for (;;) { /* the unit's sensors at the new time ("R", "D" lines), then the "A" line */
    size_t len = 0;
    for (;;) {
      int c = read_byte(host.ctrl_fd, "control channel");
      if (c < 0) exit(0); /* the harness ended the run */
      if (c == '\n') break;
      if (len + 1 < sizeof line) line[len++] = (char)c;
    }
    line[len] = '\0';
    unsigned int a, b, c;
    if (line[0] == 'R' && sscanf(line, "R %u %u %u", &a, &b, &c) == 3)
      i2c_set_register(a, b, c);
    else if (line[0] == 'D' && sscanf(line, "D %u %u", &a, &b) == 2)
      i2c_set_present(a, b);
    else if (line[0] == 'A')
      break;
    else
      host_fatal("control channel: malformed command '%s'", line);
  }
  unsigned long long t_ms = 0;
  unsigned int counts[1 + HOST_PORTS] = {0};
  if (sscanf(line, "A %llu %u %u %u %u %u %u %u", &t_ms, &counts[0], &counts[1], &counts[2], &counts[3], &counts[4],
             &counts[5], &counts[6]) != 8)
    host_fatal("control channel: malformed command '%s'", line);
  if (t_ms < host.now_ms) host_fatal("control channel: time moved back from %llu to %llu ms",
                                          (unsigned long long)host.now_ms, t_ms);
  host.now_ms = t_ms;
  uwTick = (uint32_t)t_ms;
  if (counts[0] && host.can_fd < 0) host_fatal("CAN1 has no port (DTG_HOST_CAN1_FD)");
  host.can_owed = counts[0]; /* delivered one per wake, after the bytes and the timers below */
  for (int i = 0; i < HOST_PORTS; i++) {
    for (unsigned int k = 0; k < counts[1 + i]; k++) {
      int c = read_byte(host.ports[i].fd, port_names[i]);
      if (c < 0) host_fatal("%s: the harness closed the port", port_names[i]);
      uart_deliver(&host.ports[i], (uint8_t)c);
    }
  }
  for (int i = 0; i < HOST_TIMERS; i++) {
    while (host.timers[i] != NULL && host.timer_next_ms[i] <= host.now_ms) {
      host.timer_next_ms[i] += host.timer_period_ms[i];
      HAL_TIM_PeriodElapsedCallback(host.timers[i]);
    }
  }
  if (host.can_owed > 0) {
    host.can_owed--;
    can_read_frames(1);
  }
}

/* ------------------------------------------------------------------------------------------- core, tick */

HAL_StatusTypeDef HAL_Init(void) {
  host_setup();
  return HAL_OK;
}
HAL_StatusTypeDef HAL_DeInit(void) { return HAL_OK; }
void HAL_IncTick(void) {}
uint32_t HAL_GetTick(void) {
  if (++host.spins >= HOST_SPIN_LIMIT) host_idle(); /* polled in a busy-wait: nothing else to do until time moves */
  return uwTick;
}
void HAL_Delay(uint32_t Delay) {
  uint64_t wait = Delay;
  if (wait < HAL_MAX_DELAY) wait += HAL_TICK_FREQ_DEFAULT; /* as ST's: at least Delay full ticks */
  uint64_t until = host.now_ms + wait, outer = host.delay_until_ms;
  host.delay_until_ms = until < outer ? until : outer;
  while (host.now_ms < until) host_idle();
  host.delay_until_ms = outer;
  host.spins = 0;
}
void HAL_SuspendTick(void) {}
void HAL_ResumeTick(void) {}
void HAL_NVIC_SetPriority(int32_t IRQn, uint32_t PreemptPriority, uint32_t SubPriority) {
  UNUSED(IRQn); UNUSED(PreemptPriority); UNUSED(SubPriority);
}
void HAL_NVIC_EnableIRQ(int32_t IRQn) { UNUSED(IRQn); }
void HAL_NVIC_DisableIRQ(int32_t IRQn) { UNUSED(IRQn); }
void HAL_NVIC_SetPriorityGrouping(uint32_t PriorityGroup) { UNUSED(PriorityGroup); }
void HAL_NVIC_SystemReset(void) { host_fatal("HAL_NVIC_SystemReset: the firmware reset itself"); }
void __disable_irq(void) { host.irq_disabled = 1; }
void __enable_irq(void) { host.irq_disabled = 0; }
void __WFI(void) { host_idle(); }
void __NOP(void) {}

HAL_StatusTypeDef HAL_RCC_OscConfig(RCC_OscInitTypeDef *RCC_OscInitStruct) { UNUSED(RCC_OscInitStruct); return HAL_OK; }
HAL_StatusTypeDef HAL_RCC_ClockConfig(RCC_ClkInitTypeDef *RCC_ClkInitStruct, uint32_t FLatency) {
  UNUSED(RCC_ClkInitStruct); UNUSED(FLatency);
  return HAL_OK;
}
uint32_t HAL_RCC_GetSysClockFreq(void) { return SystemCoreClock; }
uint32_t HAL_RCC_GetHCLKFreq(void) { return SystemCoreClock; }
uint32_t HAL_RCC_GetPCLK1Freq(void) { return SystemCoreClock / 4U; }
uint32_t HAL_RCC_GetPCLK2Freq(void) { return SystemCoreClock / 2U; }
void host_rcc_clock_enable(void) {}

void HAL_GPIO_Init(GPIO_TypeDef *GPIOx, GPIO_InitTypeDef *GPIO_Init) { UNUSED(GPIOx); UNUSED(GPIO_Init); }
void HAL_GPIO_WritePin(GPIO_TypeDef *GPIOx, uint16_t GPIO_Pin, GPIO_PinState PinState) {
  UNUSED(GPIOx); UNUSED(GPIO_Pin); UNUSED(PinState);
}
GPIO_PinState HAL_GPIO_ReadPin(GPIO_TypeDef *GPIOx, uint16_t GPIO_Pin) {
  UNUSED(GPIOx); UNUSED(GPIO_Pin);
  return GPIO_PIN_RESET;
}
void HAL_GPIO_TogglePin(GPIO_TypeDef *GPIOx, uint16_t GPIO_Pin) { UNUSED(GPIOx); UNUSED(GPIO_Pin); }

/* ------------------------------------------------------------------------------------------- IRQ handlers */
/* The host delivers each interrupt by calling its callback directly: a CubeMX stm32f4xx_it.c that calls these from
 * its IRQ handlers builds unchanged, and the handlers themselves are never called. */
void HAL_CAN_IRQHandler(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }
void HAL_UART_IRQHandler(UART_HandleTypeDef *huart) { UNUSED(huart); }
void HAL_TIM_IRQHandler(TIM_HandleTypeDef *htim) { UNUSED(htim); }
