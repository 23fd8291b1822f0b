/* The DTG unit's sample firmware for dtg-hil (docs/firmware.md): an STM32F4 application on ST's HAL.
 *
 * CAN1 (500 kbit/s, the OBD-II port): every frame received is forwarded to the phone; the engine ECU is polled once
 * a second (dtg_obd.c). USART1 (921600 8N1) to the phone: the link (dtg_link.c), dtg-link-v2 by default, raw-can-v1
 * when built with -DDTG_LINK_RAW_CAN_V1. USART2 (9600 8N1) from the GNSS receiver: NMEA (dtg_nmea.c). TIM6: the
 * 500 ms tick that wakes the main loop for timeouts and poll cycles. I2C1: the unit's own brake-pressure sensor
 * (through a 16-bit ADC) and accelerometer, read once per sample (dtg_sensors.c). */
#include "main.h"

#include <string.h>

#include "dtg_link.h"
#include "dtg_nmea.h"
#include "dtg_obd.h"
#include "dtg_sensors.h"

CAN_HandleTypeDef hcan1;
UART_HandleTypeDef huart1;
UART_HandleTypeDef huart2;
TIM_HandleTypeDef htim6;
I2C_HandleTypeDef hi2c1;

#ifdef DTG_LINK_RAW_CAN_V1
static const link_codec codec = LINK_RAW_CAN_V1;
#else
static const link_codec codec = LINK_DTG_LINK_V2;
#endif

#define RX_QUEUE 128U /* frames between the receive interrupt and the main loop */

static struct {
  link_can_frame frame[RX_QUEUE];
  uint32_t t_ms[RX_QUEUE];
  volatile uint32_t head, tail; /* written by the interrupt (head) and the main loop (tail) */
} rx;

static uint32_t frames_received, frames_dropped, link_seq;
static uint8_t gnss_byte;

static void SystemClock_Config(void);
static void MX_GPIO_Init(void);
static void MX_CAN1_Init(void);
static void MX_USART1_UART_Init(void);
static void MX_USART2_UART_Init(void);
static void MX_TIM6_Init(void);
static void MX_I2C1_Init(void);

static void link_send(const uint8_t *frame, size_t n) {
  if (n == 0) {
    frames_dropped++; /* the codec cannot carry it (a 29-bit ID on raw-can-v1): never truncated */
    return;
  }
  if (codec == LINK_DTG_LINK_V2) link_seq++;
  if (HAL_UART_Transmit(&huart1, frame, (uint16_t)n, 10) != HAL_OK) frames_dropped++;
}

static void forward(const link_can_frame *frame, uint32_t t_ms) {
  uint8_t out[LINK_FRAME_MAX];
  link_send(out, link_encode_can(codec, link_seq, t_ms, frame, out));
}

int obd_send_request(uint8_t pid, uint32_t now_ms) {
  CAN_TxHeaderTypeDef header = {.StdId = OBD_REQUEST_ID, .IDE = CAN_ID_STD, .RTR = CAN_RTR_DATA, .DLC = 8};
  uint8_t data[8] = {0x02, 0x01, pid, OBD_PAD_BYTE, OBD_PAD_BYTE, OBD_PAD_BYTE, OBD_PAD_BYTE, OBD_PAD_BYTE};
  uint32_t mailbox;
  if (HAL_CAN_GetTxMailboxesFreeLevel(&hcan1) == 0 || HAL_CAN_AddTxMessage(&hcan1, &header, data, &mailbox) != HAL_OK)
    return 0;
  link_can_frame own = {.id = OBD_REQUEST_ID, .extended = 0, .dlc = 8};
  memcpy(own.data, data, 8);
  forward(&own, now_ms); /* the app sees each request next to its answer */
  return 1;
}

void obd_cycle_complete(uint32_t cycle_ms) {
  if (codec != LINK_DTG_LINK_V2) return;
  link_sample sample;
  memset(&sample, 0, sizeof sample);
  obd_values(cycle_ms, &sample);
  sensors_read(&sample);
  if (gnss.has_fix) {
    sample.value[7] = gnss.latitude_deg;
    sample.value[8] = gnss.longitude_deg;
    sample.has[7] = sample.has[8] = 1;
    sample.value[9] = gnss.altitude_m;
    sample.has[9] = gnss.has_altitude;
  }
  uint8_t out[LINK_FRAME_MAX];
  link_send(out, link_encode_sample(link_seq, cycle_ms, &sample, out));
  link_status status = {obd.requests_sent, obd.requests_unanswered, frames_received, frames_dropped};
  link_send(out, link_encode_status(link_seq, cycle_ms, &status, out));
}

/* ------------------------------------------------------------------------------------ interrupts */

void HAL_CAN_RxFifo0MsgPendingCallback(CAN_HandleTypeDef *hcan) {
  CAN_RxHeaderTypeDef header;
  uint8_t data[8];
  if (HAL_CAN_GetRxMessage(hcan, CAN_RX_FIFO0, &header, data) != HAL_OK) return;
  frames_received++;
  if (header.RTR != CAN_RTR_DATA) {
    frames_dropped++; /* no codec carries remote frames */
    return;
  }
  if (rx.head - rx.tail >= RX_QUEUE) {
    frames_dropped++;
    return;
  }
  link_can_frame *f = &rx.frame[rx.head % RX_QUEUE];
  f->extended = header.IDE == CAN_ID_EXT;
  f->id = f->extended ? header.ExtId : header.StdId;
  f->dlc = (uint8_t)header.DLC;
  memcpy(f->data, data, header.DLC);
  rx.t_ms[rx.head % RX_QUEUE] = HAL_GetTick();
  rx.head++;
}

void HAL_UART_RxCpltCallback(UART_HandleTypeDef *huart) {
  if (huart->Instance == USART2) {
    nmea_feed_byte(gnss_byte);
    HAL_UART_Receive_IT(&huart2, &gnss_byte, 1);
  }
}

void HAL_TIM_PeriodElapsedCallback(TIM_HandleTypeDef *htim) {
  UNUSED(htim); /* only wakes the main loop */
}

/* ------------------------------------------------------------------------------------ main */

int main(void) {
  HAL_Init();
  SystemClock_Config();
  MX_GPIO_Init();
  MX_CAN1_Init();
  MX_USART1_UART_Init();
  MX_USART2_UART_Init();
  MX_TIM6_Init();
  MX_I2C1_Init();
  sensors_init(&hi2c1);

  CAN_FilterTypeDef filter = {0}; /* accept every frame into FIFO 0 */
  filter.FilterBank = 0;
  filter.FilterMode = CAN_FILTERMODE_IDMASK;
  filter.FilterScale = CAN_FILTERSCALE_32BIT;
  filter.FilterFIFOAssignment = CAN_RX_FIFO0;
  filter.FilterActivation = ENABLE;
  filter.SlaveStartFilterBank = 14;
  if (HAL_CAN_ConfigFilter(&hcan1, &filter) != HAL_OK) Error_Handler();
  if (HAL_CAN_Start(&hcan1) != HAL_OK) Error_Handler();
  if (HAL_CAN_ActivateNotification(&hcan1, CAN_IT_RX_FIFO0_MSG_PENDING) != HAL_OK) Error_Handler();
  if (HAL_UART_Receive_IT(&huart2, &gnss_byte, 1) != HAL_OK) Error_Handler();
  if (HAL_TIM_Base_Start_IT(&htim6) != HAL_OK) Error_Handler();

  for (;;) {
    while (rx.tail != rx.head) { /* forward in arrival order; an answer lets the next request go at once */
      uint32_t slot = rx.tail % RX_QUEUE;
      forward(&rx.frame[slot], rx.t_ms[slot]);
      obd_take_frame(&rx.frame[slot], rx.t_ms[slot]);
      rx.tail++;
      obd_run(HAL_GetTick());
    }
    obd_run(HAL_GetTick());
    __disable_irq();
    if (rx.tail == rx.head) __WFI(); /* sleep until the next interrupt: a frame, a GNSS byte, the 500 ms tick */
    __enable_irq();
  }
}

static void SystemClock_Config(void) {
  RCC_OscInitTypeDef osc = {0};
  RCC_ClkInitTypeDef clk = {0};
  __HAL_RCC_PWR_CLK_ENABLE();
  __HAL_PWR_VOLTAGESCALING_CONFIG(PWR_REGULATOR_VOLTAGE_SCALE1);
  osc.OscillatorType = RCC_OSCILLATORTYPE_HSE;
  osc.HSEState = RCC_HSE_ON;
  osc.PLL.PLLState = RCC_PLL_ON;
  osc.PLL.PLLSource = RCC_PLLSOURCE_HSE;
  osc.PLL.PLLM = 8;
  osc.PLL.PLLN = 336;
  osc.PLL.PLLP = RCC_PLLP_DIV2;
  osc.PLL.PLLQ = 7;
  if (HAL_RCC_OscConfig(&osc) != HAL_OK) Error_Handler();
  clk.ClockType = RCC_CLOCKTYPE_HCLK | RCC_CLOCKTYPE_SYSCLK | RCC_CLOCKTYPE_PCLK1 | RCC_CLOCKTYPE_PCLK2;
  clk.SYSCLKSource = RCC_SYSCLKSOURCE_PLLCLK;
  clk.AHBCLKDivider = RCC_SYSCLK_DIV1;
  clk.APB1CLKDivider = RCC_HCLK_DIV4;
  clk.APB2CLKDivider = RCC_HCLK_DIV2;
  if (HAL_RCC_ClockConfig(&clk, FLASH_LATENCY_5) != HAL_OK) Error_Handler();
}

static void MX_GPIO_Init(void) {
  __HAL_RCC_GPIOA_CLK_ENABLE();
  __HAL_RCC_GPIOB_CLK_ENABLE();
  __HAL_RCC_GPIOD_CLK_ENABLE();
  GPIO_InitTypeDef led = {.Pin = GPIO_PIN_12, .Mode = GPIO_MODE_OUTPUT_PP, .Pull = GPIO_NOPULL,
                          .Speed = GPIO_SPEED_FREQ_LOW};
  HAL_GPIO_Init(GPIOD, &led);
}

static void MX_CAN1_Init(void) {
  /* 42 MHz APB1 / 6 / (1 + 11 + 2) = 500 kbit/s */
  hcan1.Instance = CAN1;
  hcan1.Init.Prescaler = 6;
  hcan1.Init.Mode = CAN_MODE_NORMAL;
  hcan1.Init.SyncJumpWidth = CAN_SJW_1TQ;
  hcan1.Init.TimeSeg1 = CAN_BS1_11TQ;
  hcan1.Init.TimeSeg2 = CAN_BS2_2TQ;
  hcan1.Init.TimeTriggeredMode = DISABLE;
  hcan1.Init.AutoBusOff = ENABLE;
  hcan1.Init.AutoWakeUp = DISABLE;
  hcan1.Init.AutoRetransmission = ENABLE;
  hcan1.Init.ReceiveFifoLocked = DISABLE;
  hcan1.Init.TransmitFifoPriority = ENABLE;
  if (HAL_CAN_Init(&hcan1) != HAL_OK) Error_Handler();
}

static void uart_init(UART_HandleTypeDef *huart, USART_TypeDef *instance, uint32_t baud, uint32_t mode) {
  huart->Instance = instance;
  huart->Init.BaudRate = baud;
  huart->Init.WordLength = UART_WORDLENGTH_8B;
  huart->Init.StopBits = UART_STOPBITS_1;
  huart->Init.Parity = UART_PARITY_NONE;
  huart->Init.Mode = mode;
  huart->Init.HwFlowCtl = UART_HWCONTROL_NONE;
  huart->Init.OverSampling = UART_OVERSAMPLING_16;
  if (HAL_UART_Init(huart) != HAL_OK) Error_Handler();
}

static void MX_USART1_UART_Init(void) { uart_init(&huart1, USART1, 921600, UART_MODE_TX); }
static void MX_USART2_UART_Init(void) { uart_init(&huart2, USART2, 9600, UART_MODE_RX); }

static void MX_TIM6_Init(void) {
  /* 84 MHz / 8400 = 10 kHz; 5000 counts: 500 ms, the OBD-II answer timeout (every deadline falls on this tick:
   * requests go out on a whole second or when the previous one timed out) */
  htim6.Instance = TIM6;
  htim6.Init.Prescaler = 8399;
  htim6.Init.CounterMode = TIM_COUNTERMODE_UP;
  htim6.Init.Period = 4999;
  htim6.Init.AutoReloadPreload = TIM_AUTORELOAD_PRELOAD_DISABLE;
  if (HAL_TIM_Base_Init(&htim6) != HAL_OK) Error_Handler();
}

static void MX_I2C1_Init(void) {
  hi2c1.Instance = I2C1;
  hi2c1.Init.ClockSpeed = 400000;
  hi2c1.Init.DutyCycle = I2C_DUTYCYCLE_2;
  hi2c1.Init.OwnAddress1 = 0;
  hi2c1.Init.AddressingMode = I2C_ADDRESSINGMODE_7BIT;
  hi2c1.Init.DualAddressMode = I2C_DUALADDRESS_DISABLE;
  hi2c1.Init.OwnAddress2 = 0;
  hi2c1.Init.GeneralCallMode = I2C_GENERALCALL_DISABLE;
  hi2c1.Init.NoStretchMode = I2C_NOSTRETCH_DISABLE;
  if (HAL_I2C_Init(&hi2c1) != HAL_OK) Error_Handler();
}

void Error_Handler(void) {
  __disable_irq();
  for (;;) {
  }
}
