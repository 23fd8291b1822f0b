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
 * End of the control channel ends the process (exit 0).
 */
#include "stm32f4xx_hal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOST_PORTS 6                  /* USART1, USART2, USART3, UART4, UART5, USART6 */
#define HOST_TIMERS 8
#define HOST_RX_FIFO_DEPTH 3          /* bxCAN: three mailboxes per receive FIFO */
#define HOST_TX_MAILBOXES 3
#define HOST_FILTER_BANKS 28
#define HOST_SPIN_LIMIT 10000         /* HAL_GetTick() calls in a row that count as a busy-wait: the firmware is idle */
#define HOST_READ_TIMEOUT_MS 10000    /* bytes the harness announced must arrive within this (wall ms) */
#define HOST_TIM_CLOCK_HZ 84000000ULL /* APB1 timer clock of an STM32F407 at 168 MHz */

__IO uint32_t uwTick;
uint32_t SystemCoreClock = 168000000U;

CAN_TypeDef host_CAN1 = {0}, host_CAN2 = {1};
USART_TypeDef host_USART1 = {0}, host_USART2 = {1}, host_USART3 = {2}, host_UART4 = {3}, host_UART5 = {4},
              host_USART6 = {5};
TIM_TypeDef host_TIM2 = {0}, host_TIM3 = {1}, host_TIM4 = {2}, host_TIM5 = {3}, host_TIM6 = {4}, host_TIM7 = {5};
GPIO_TypeDef host_GPIOA = {0}, host_GPIOB = {1}, host_GPIOC = {2}, host_GPIOD = {3}, host_GPIOE = {4},
             host_GPIOH = {5};

static const char *const port_names[HOST_PORTS] = {"USART1", "USART2", "USART3", "UART4", "UART5", "USART6"};

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

static struct {
  int ctrl_fd, can_fd, initialised;
  host_port ports[HOST_PORTS];
  host_buffer can_out;
  uint32_t can_frames_pending;
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
} host;

static void host_fatal(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fprintf(stderr, "host HAL: ");
  vfprintf(stderr, fmt, args);
  fprintf(stderr, "\n");
  va_end(args);
  exit(3);
}

static void buffer_add(host_buffer *b, const void *data, size_t n) {
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

static int read_byte(int fd, const char *what) {
  uint8_t byte;
  for (;;) {
    ssize_t got = read(fd, &byte, 1);
    if (got == 1) return byte;
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

static void host_setup(void) {
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
}

/* ------------------------------------------------------------------------------------------- interrupts */

static int filter_accepts(const host_frame *f, uint32_t *bank) {
  /* The 32-bit register image of a frame as bxCAN compares it: STID[10:0] EXID[17:0] IDE RTR 0 */
  uint32_t image = f->ide ? ((f->id << 3) | 0x4U) : (f->id << 21);
  if (f->rtr) image |= 0x2U;
  for (uint32_t i = 0; i < HOST_FILTER_BANKS; i++) {
    const CAN_FilterTypeDef *c = &host.filters[i];
    if (c->FilterActivation != CAN_FILTER_ENABLE || c->FilterFIFOAssignment != CAN_FILTER_FIFO0) continue;
    if (c->FilterScale == CAN_FILTERSCALE_32BIT) {
      uint32_t id = (c->FilterIdHigh << 16) | (c->FilterIdLow & 0xFFFFU);
      uint32_t mask = (c->FilterMaskIdHigh << 16) | (c->FilterMaskIdLow & 0xFFFFU);
      int hit = c->FilterMode == CAN_FILTERMODE_IDMASK ? ((image ^ id) & mask) == 0 : (image == id || image == mask);
      if (hit) { *bank = i; return 1; }
    } else { /* 16-bit scale: STID[10:0] RTR IDE EXID[17:15] */
      uint32_t image16 = ((f->id >> (f->ide ? 18 : 0)) & 0x7FFU) << 5;
      if (f->rtr) image16 |= 0x10U;
      if (f->ide) image16 |= 0x8U | ((f->id >> 15) & 0x7U);
      uint32_t a = c->FilterIdLow & 0xFFFFU, b = c->FilterMaskIdLow & 0xFFFFU;
      uint32_t a2 = c->FilterIdHigh & 0xFFFFU, b2 = c->FilterMaskIdHigh & 0xFFFFU;
      int hit = c->FilterMode == CAN_FILTERMODE_IDMASK
                    ? (((image16 ^ a) & b) == 0 || ((image16 ^ a2) & b2) == 0)
                    : (image16 == a || image16 == b || image16 == a2 || image16 == b2);
      if (hit) { *bank = i; return 1; }
    }
  }
  return 0;
}

static void can_deliver(const host_frame *frame) {
  uint32_t bank = 0;
  if (host.can == NULL || !host.can_started || !filter_accepts(frame, &bank)) return;
  if (host.fifo_count == HOST_RX_FIFO_DEPTH) { /* FIFO overrun: the new frame is lost (FIFO not locked: ST resets) */
    host.fifo_overruns++;
    host.can->ErrorCode |= HAL_CAN_ERROR_FOV0;
    return;
  }
  host_frame *slot = &host.fifo[(host.fifo_head + host.fifo_count) % HOST_RX_FIFO_DEPTH];
  *slot = *frame;
  slot->filter = bank;
  host.fifo_count++;
  /* The RX0 interrupt stays pending while the FIFO holds a frame; a callback that reads none ends it here. */
  while (host.fifo_count > 0 && (host.can_its & CAN_IT_RX_FIFO0_MSG_PENDING)) {
    uint32_t before = host.fifo_count;
    HAL_CAN_RxFifo0MsgPendingCallback(host.can);
    if (host.fifo_count == before) break;
  }
}

static int hex_value(const char *s, size_t n, uint32_t *out) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = (v << 4) | (uint32_t)d;
  }
  *out = v;
  return 1;
}

static void can_answer(const char *text) { buffer_add(&host.can_out, text, strlen(text)); }

/* One slcan line from the harness (without its CR); returns 1 if it was a frame line. */
static int slcan_line(const char *line, size_t n) {
  if (n == 0) { can_answer("\r"); return 0; }
  char kind = line[0];
  if (kind == 't' || kind == 'T' || kind == 'r' || kind == 'R') {
    size_t id_chars = (kind == 't' || kind == 'r') ? 3 : 8;
    host_frame f = {0};
    uint32_t dlc = 0;
    int ok = n >= 1 + id_chars + 1 && hex_value(line + 1, id_chars, &f.id) && hex_value(line + 1 + id_chars, 1, &dlc)
             && dlc <= 8;
    f.ide = kind == 'T' || kind == 'R';
    f.rtr = kind == 'r' || kind == 'R';
    f.dlc = dlc;
    if (ok && !f.rtr) {
      ok = n == 1 + id_chars + 1 + 2 * dlc;
      for (uint32_t i = 0; ok && i < dlc; i++) {
        uint32_t byte;
        ok = hex_value(line + 2 + id_chars + 2 * i, 2, &byte);
        f.data[i] = (uint8_t)byte;
      }
    }
    if (!ok) { can_answer("\a"); return 1; }
    can_answer(f.ide ? "Z\r" : "z\r");
    can_deliver(&f);
    return 1;
  }
  if (kind == 'V') can_answer("V1013\r");
  else if (kind == 'N') can_answer("NHOST\r");
  else if (kind == 'S' || kind == 's' || kind == 'O' || kind == 'L' || kind == 'C' || kind == 'Z') can_answer("\r");
  else can_answer("\a");
  return 0;
}

static void can_read_frames(uint32_t frames) {
  while (frames > 0) {
    int c = read_byte(host.can_fd, "CAN1 (slcan)");
    if (c < 0) host_fatal("CAN1 (slcan): the harness closed the port");
    if (c == '\r') {
      host.can_line[host.can_line_len] = '\0';
      frames -= (uint32_t)slcan_line(host.can_line, host.can_line_len);
      host.can_line_len = 0;
    } else if (host.can_line_len + 1 < sizeof host.can_line) {
      host.can_line[host.can_line_len++] = (char)c;
    }
  }
}

static void uart_deliver(host_port *port, uint8_t byte) {
  UART_HandleTypeDef *h = port->rx;
  if (h == NULL) { /* no reception armed: the byte overruns the data register and is lost */
    port->overruns++;
    return;
  }
  h->pRxBuffPtr[h->RxXferSize - h->RxXferCount] = byte;
  h->RxXferCount--;
  if (h->RxXferCount == 0) {
    port->rx = NULL;
    h->RxState = HAL_UART_STATE_READY;
    HAL_UART_RxCpltCallback(h);
  }
}

static int deliver_tx_complete(void) {
  int any = 0;
  for (int i = 0; i < HOST_PORTS; i++) {
    UART_HandleTypeDef *h = host.ports[i].tx_done;
    if (h != NULL) {
      host.ports[i].tx_done = NULL;
      h->gState = HAL_UART_STATE_READY;
      h->TxXferCount = 0;
      HAL_UART_TxCpltCallback(h);
      any = 1;
    }
  }
  return any;
}

static uint64_t next_due_ms(void) {
  uint64_t due = host.delay_until_ms;
  for (int i = 0; i < HOST_TIMERS; i++)
    if (host.timers[i] != NULL && host.timer_next_ms[i] < due) due = host.timer_next_ms[i];
  return due;
}

static void flush_outputs(void) {
  if (host.can_out.len) write_all(host.can_fd, host.can_out.data, host.can_out.len, "CAN1 (slcan)");
  host.can_out.len = 0;
  for (int i = 0; i < HOST_PORTS; i++) {
    host_port *p = &host.ports[i];
    if (p->out.len) write_all(p->fd, p->out.data, p->out.len, port_names[i]);
    p->out.len = 0;
  }
}

/* The firmware is idle: report, wait for the harness to move time on, deliver what it sent and the timers due. */
static void host_idle(void) {
  char line[256];
  host.spins = 0;
  if (deliver_tx_complete()) return; /* a pending interrupt wakes the core at once */
  uint64_t due = next_due_ms();
  int n = snprintf(line, sizeof line, "I %lld %u", due == UINT64_MAX ? -1LL : (long long)due, host.can_frames_pending);
  for (int i = 0; i < HOST_PORTS; i++) {
    n += snprintf(line + n, sizeof line - (size_t)n, " %u", host.ports[i].out_pending);
    host.ports[i].out_pending = 0;
  }
  host.can_frames_pending = 0;
  line[n++] = '\n';
  write_all(host.ctrl_fd, (const uint8_t *)line, (size_t)n, "control channel");
  flush_outputs();
  size_t len = 0;
  for (;;) {
    int c = read_byte(host.ctrl_fd, "control channel");
    if (c < 0) exit(0); /* the harness ended the run */
    if (c == '\n') break;
    if (len + 1 < sizeof line) line[len++] = (char)c;
  }
  line[len] = '\0';
  unsigned long long t_ms = 0;
  unsigned int counts[1 + HOST_PORTS] = {0};
  if (sscanf(line, "A %llu %u %u %u %u %u %u %u", &t_ms, &counts[0], &counts[1], &counts[2], &counts[3], &counts[4],
             &counts[5], &counts[6]) != 8)
    host_fatal("control channel: malformed command '%s'", line);
  if (t_ms < host.now_ms) host_fatal("control channel: time moved back from %llu to %llu ms", host.now_ms, t_ms);
  host.now_ms = t_ms;
  uwTick = (uint32_t)t_ms;
  if (counts[0] && host.can_fd < 0) host_fatal("CAN1 has no port (DTG_HOST_CAN1_FD)");
  can_read_frames(counts[0]);
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

/* ------------------------------------------------------------------------------------------- CAN */

__attribute__((weak)) void HAL_CAN_MspInit(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }
__attribute__((weak)) void HAL_CAN_RxFifo0MsgPendingCallback(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }
__attribute__((weak)) void HAL_CAN_ErrorCallback(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }

HAL_StatusTypeDef HAL_CAN_Init(CAN_HandleTypeDef *hcan) {
  host_setup();
  if (hcan == NULL || hcan->Instance != CAN1) return HAL_ERROR; /* the host has one CAN controller */
  HAL_CAN_MspInit(hcan);
  host.can = hcan;
  hcan->ErrorCode = HAL_CAN_ERROR_NONE;
  hcan->State = HAL_CAN_STATE_READY;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_DeInit(CAN_HandleTypeDef *hcan) {
  hcan->State = HAL_CAN_STATE_RESET;
  host.can_started = 0;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_ConfigFilter(CAN_HandleTypeDef *hcan, const CAN_FilterTypeDef *sFilterConfig) {
  if (hcan->State != HAL_CAN_STATE_READY && hcan->State != HAL_CAN_STATE_LISTENING) {
    hcan->ErrorCode |= HAL_CAN_ERROR_NOT_READY;
    return HAL_ERROR;
  }
  if (sFilterConfig->FilterBank >= HOST_FILTER_BANKS) {
    hcan->ErrorCode |= HAL_CAN_ERROR_PARAM;
    return HAL_ERROR;
  }
  host.filters[sFilterConfig->FilterBank] = *sFilterConfig;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_Start(CAN_HandleTypeDef *hcan) {
  if (hcan->State != HAL_CAN_STATE_READY) {
    hcan->ErrorCode |= HAL_CAN_ERROR_NOT_READY;
    return HAL_ERROR;
  }
  if (host.can_fd < 0) host_fatal("HAL_CAN_Start: CAN1 has no port (DTG_HOST_CAN1_FD)");
  hcan->State = HAL_CAN_STATE_LISTENING;
  host.can_started = 1;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_Stop(CAN_HandleTypeDef *hcan) {
  hcan->State = HAL_CAN_STATE_READY;
  host.can_started = 0;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_ActivateNotification(CAN_HandleTypeDef *hcan, uint32_t ActiveITs) {
  UNUSED(hcan);
  host.can_its |= ActiveITs;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_DeactivateNotification(CAN_HandleTypeDef *hcan, uint32_t InactiveITs) {
  UNUSED(hcan);
  host.can_its &= ~InactiveITs;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_CAN_AddTxMessage(CAN_HandleTypeDef *hcan, const CAN_TxHeaderTypeDef *pHeader,
                                       const uint8_t aData[], uint32_t *pTxMailbox) {
  if (hcan->State != HAL_CAN_STATE_LISTENING) {
    hcan->ErrorCode |= HAL_CAN_ERROR_NOT_STARTED;
    return HAL_ERROR;
  }
  if (pHeader->DLC > 8 || (pHeader->IDE == CAN_ID_STD && pHeader->StdId > 0x7FFU) ||
      (pHeader->IDE == CAN_ID_EXT && pHeader->ExtId > 0x1FFFFFFFU)) {
    hcan->ErrorCode |= HAL_CAN_ERROR_PARAM;
    return HAL_ERROR;
  }
  char line[32];
  int n;
  int remote = pHeader->RTR == CAN_RTR_REMOTE;
  if (pHeader->IDE == CAN_ID_EXT)
    n = snprintf(line, sizeof line, "%c%08X%u", remote ? 'R' : 'T', (unsigned)pHeader->ExtId, (unsigned)pHeader->DLC);
  else
    n = snprintf(line, sizeof line, "%c%03X%u", remote ? 'r' : 't', (unsigned)pHeader->StdId, (unsigned)pHeader->DLC);
  for (uint32_t i = 0; !remote && i < pHeader->DLC; i++) n += snprintf(line + n, sizeof line - (size_t)n, "%02X", aData[i]);
  line[n++] = '\r';
  buffer_add(&host.can_out, line, (size_t)n);
  host.can_frames_pending++;
  /* The frame leaves at once (the virtual bus has no arbitration): its mailbox is free again on return. */
  if (pTxMailbox != NULL) *pTxMailbox = CAN_TX_MAILBOX0;
  host.spins = 0;
  return HAL_OK;
}
uint32_t HAL_CAN_GetTxMailboxesFreeLevel(const CAN_HandleTypeDef *hcan) {
  UNUSED(hcan);
  return HOST_TX_MAILBOXES;
}
HAL_StatusTypeDef HAL_CAN_GetRxMessage(CAN_HandleTypeDef *hcan, uint32_t RxFifo, CAN_RxHeaderTypeDef *pHeader,
                                       uint8_t aData[]) {
  if (RxFifo != CAN_RX_FIFO0 || host.fifo_count == 0) {
    hcan->ErrorCode |= HAL_CAN_ERROR_PARAM;
    return HAL_ERROR;
  }
  const host_frame *f = &host.fifo[host.fifo_head];
  pHeader->IDE = f->ide ? CAN_ID_EXT : CAN_ID_STD;
  pHeader->StdId = f->ide ? 0 : f->id;
  pHeader->ExtId = f->ide ? f->id : 0;
  pHeader->RTR = f->rtr ? CAN_RTR_REMOTE : CAN_RTR_DATA;
  pHeader->DLC = f->dlc;
  pHeader->Timestamp = (uint32_t)(host.now_ms & 0xFFFFU);
  pHeader->FilterMatchIndex = f->filter;
  memcpy(aData, f->data, f->dlc);
  host.fifo_head = (host.fifo_head + 1) % HOST_RX_FIFO_DEPTH;
  host.fifo_count--;
  host.spins = 0;
  return HAL_OK;
}
uint32_t HAL_CAN_GetRxFifoFillLevel(const CAN_HandleTypeDef *hcan, uint32_t RxFifo) {
  UNUSED(hcan);
  return RxFifo == CAN_RX_FIFO0 ? host.fifo_count : 0;
}
HAL_CAN_StateTypeDef HAL_CAN_GetState(const CAN_HandleTypeDef *hcan) { return hcan->State; }
uint32_t HAL_CAN_GetError(const CAN_HandleTypeDef *hcan) { return hcan->ErrorCode; }

/* ------------------------------------------------------------------------------------------- UART */

__attribute__((weak)) void HAL_UART_MspInit(UART_HandleTypeDef *huart) { UNUSED(huart); }
__attribute__((weak)) void HAL_UART_TxCpltCallback(UART_HandleTypeDef *huart) { UNUSED(huart); }
__attribute__((weak)) void HAL_UART_RxCpltCallback(UART_HandleTypeDef *huart) { UNUSED(huart); }
__attribute__((weak)) void HAL_UART_ErrorCallback(UART_HandleTypeDef *huart) { UNUSED(huart); }

static host_port *port_of(const UART_HandleTypeDef *huart) {
  uint32_t i = huart->Instance->host_index;
  if (i >= HOST_PORTS) host_fatal("unknown UART instance");
  host_port *p = &host.ports[i];
  if (p->fd < 0) host_fatal("%s has no port (DTG_HOST_%s_FD): the rig does not wire it", port_names[i], port_names[i]);
  return p;
}

HAL_StatusTypeDef HAL_UART_Init(UART_HandleTypeDef *huart) {
  host_setup();
  if (huart == NULL || huart->Instance == NULL) return HAL_ERROR;
  HAL_UART_MspInit(huart);
  huart->ErrorCode = HAL_UART_ERROR_NONE;
  huart->gState = HAL_UART_STATE_READY;
  huart->RxState = HAL_UART_STATE_READY;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_UART_DeInit(UART_HandleTypeDef *huart) {
  huart->gState = huart->RxState = HAL_UART_STATE_RESET;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_UART_Transmit(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size, uint32_t Timeout) {
  UNUSED(Timeout);
  if (huart->gState != HAL_UART_STATE_READY) return HAL_BUSY;
  if (pData == NULL || Size == 0) return HAL_ERROR;
  host_port *p = port_of(huart);
  buffer_add(&p->out, pData, Size);
  p->out_pending += Size;
  host.spins = 0;
  return HAL_OK;
}
static HAL_StatusTypeDef transmit_async(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size) {
  if (huart->gState != HAL_UART_STATE_READY) return HAL_BUSY;
  if (pData == NULL || Size == 0) return HAL_ERROR;
  host_port *p = port_of(huart);
  huart->pTxBuffPtr = pData;
  huart->TxXferSize = huart->TxXferCount = Size;
  /* The bytes are taken now; the buffer must stay untouched until HAL_UART_TxCpltCallback, as on the chip, where
   * the DMA reads it while the line sends: the completion comes when the firmware next waits (__WFI). */
  buffer_add(&p->out, pData, Size);
  p->out_pending += Size;
  huart->gState = HAL_UART_STATE_BUSY_TX;
  p->tx_done = huart;
  host.spins = 0;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_UART_Transmit_IT(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size) {
  return transmit_async(huart, pData, Size);
}
HAL_StatusTypeDef HAL_UART_Transmit_DMA(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size) {
  return transmit_async(huart, pData, Size);
}
HAL_StatusTypeDef HAL_UART_Receive_IT(UART_HandleTypeDef *huart, uint8_t *pData, uint16_t Size) {
  if (huart->RxState != HAL_UART_STATE_READY) return HAL_BUSY;
  if (pData == NULL || Size == 0) return HAL_ERROR;
  host_port *p = port_of(huart);
  huart->pRxBuffPtr = pData;
  huart->RxXferSize = huart->RxXferCount = Size;
  huart->RxState = HAL_UART_STATE_BUSY_RX;
  p->rx = huart;
  host.spins = 0;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_UART_Receive(UART_HandleTypeDef *huart, uint8_t *pData, uint16_t Size, uint32_t Timeout) {
  uint64_t deadline = Timeout == HAL_MAX_DELAY ? UINT64_MAX : host.now_ms + Timeout;
  if (HAL_UART_Receive_IT(huart, pData, Size) != HAL_OK) return HAL_BUSY;
  uint64_t outer = host.delay_until_ms;
  host.delay_until_ms = deadline < outer ? deadline : outer;
  while (huart->RxState == HAL_UART_STATE_BUSY_RX && host.now_ms < deadline) host_idle();
  host.delay_until_ms = outer;
  if (huart->RxState == HAL_UART_STATE_BUSY_RX) {
    HAL_UART_AbortReceive_IT(huart);
    return HAL_TIMEOUT;
  }
  return HAL_OK;
}
HAL_StatusTypeDef HAL_UART_AbortReceive_IT(UART_HandleTypeDef *huart) {
  host_port *p = port_of(huart);
  p->rx = NULL;
  huart->RxState = HAL_UART_STATE_READY;
  return HAL_OK;
}
HAL_UART_StateTypeDef HAL_UART_GetState(const UART_HandleTypeDef *huart) {
  return (HAL_UART_StateTypeDef)(huart->gState | huart->RxState);
}
uint32_t HAL_UART_GetError(const UART_HandleTypeDef *huart) { return huart->ErrorCode; }

/* ------------------------------------------------------------------------------------------- TIM */

__attribute__((weak)) void HAL_TIM_Base_MspInit(TIM_HandleTypeDef *htim) { UNUSED(htim); }
__attribute__((weak)) void HAL_TIM_PeriodElapsedCallback(TIM_HandleTypeDef *htim) { UNUSED(htim); }

HAL_StatusTypeDef HAL_TIM_Base_Init(TIM_HandleTypeDef *htim) {
  host_setup();
  if (htim == NULL || htim->Instance == NULL) return HAL_ERROR;
  HAL_TIM_Base_MspInit(htim);
  htim->State = HAL_TIM_STATE_READY;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_TIM_Base_DeInit(TIM_HandleTypeDef *htim) {
  HAL_TIM_Base_Stop_IT(htim);
  htim->State = HAL_TIM_STATE_RESET;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_TIM_Base_Start_IT(TIM_HandleTypeDef *htim) {
  if (htim->State != HAL_TIM_STATE_READY) return HAL_ERROR;
  uint32_t i = htim->Instance->host_index;
  uint64_t counts = (uint64_t)(htim->Init.Prescaler + 1U) * (uint64_t)(htim->Init.Period + 1U);
  uint64_t period_ms = counts * 1000ULL / HOST_TIM_CLOCK_HZ;
  if (counts * 1000ULL % HOST_TIM_CLOCK_HZ != 0 || period_ms == 0)
    host_fatal("TIM period of %llu timer clocks is not a whole number of milliseconds at %llu Hz (the host tick is "
               "1 ms)", (unsigned long long)counts, (unsigned long long)HOST_TIM_CLOCK_HZ);
  host.timers[i] = htim;
  host.timer_period_ms[i] = period_ms;
  host.timer_next_ms[i] = host.now_ms + period_ms;
  htim->State = HAL_TIM_STATE_BUSY;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_TIM_Base_Stop_IT(TIM_HandleTypeDef *htim) {
  host.timers[htim->Instance->host_index] = NULL;
  htim->State = HAL_TIM_STATE_READY;
  return HAL_OK;
}
HAL_StatusTypeDef HAL_TIM_ConfigClockSource(TIM_HandleTypeDef *htim, const TIM_ClockConfigTypeDef *sClockSourceConfig) {
  UNUSED(htim); UNUSED(sClockSourceConfig);
  return HAL_OK;
}
HAL_StatusTypeDef HAL_TIMEx_MasterConfigSynchronization(TIM_HandleTypeDef *htim,
                                                        const TIM_MasterConfigTypeDef *sMasterConfig) {
  UNUSED(htim); UNUSED(sMasterConfig);
  return HAL_OK;
}

/* ------------------------------------------------------------------------------------------- IRQ handlers */
/* The host delivers each interrupt by calling its callback directly: a CubeMX stm32f4xx_it.c that calls these from
 * its IRQ handlers builds unchanged, and the handlers themselves are never called. */
void HAL_CAN_IRQHandler(CAN_HandleTypeDef *hcan) { UNUSED(hcan); }
void HAL_UART_IRQHandler(UART_HandleTypeDef *huart) { UNUSED(huart); }
void HAL_TIM_IRQHandler(TIM_HandleTypeDef *htim) { UNUSED(htim); }
