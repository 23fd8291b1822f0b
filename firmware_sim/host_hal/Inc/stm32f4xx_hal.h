/*
 * dtg-hil's host STM32 HAL: the subset of ST's STM32F4 HAL an application's Core/Src uses for CAN, UART, a base
 * timer and the tick, with ST's type, field, constant and function names, so the application builds unchanged for
 * the host (docs/firmware.md). The implementation (../Src/host_hal.c) runs the peripherals against the harness:
 * CAN1 speaks slcan on a pty, each USART is a pty, the tick and the timers follow the harness's scenario clock.
 *
 * Only declarations here: this header also compiles for Cortex-M4 (the CI's arm-none-eabi check of the firmware).
 */
#ifndef STM32F4XX_HAL_H
#define STM32F4XX_HAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- common */
typedef enum { HAL_OK = 0x00U, HAL_ERROR = 0x01U, HAL_BUSY = 0x02U, HAL_TIMEOUT = 0x03U } HAL_StatusTypeDef;
typedef enum { HAL_UNLOCKED = 0x00U, HAL_LOCKED = 0x01U } HAL_LockTypeDef;
typedef enum { RESET = 0U, SET = !RESET } FlagStatus, ITStatus;
typedef enum { DISABLE = 0U, ENABLE = !DISABLE } FunctionalState;
typedef enum { SUCCESS = 0U, ERROR = !SUCCESS } ErrorStatus;

#define HAL_MAX_DELAY 0xFFFFFFFFU
#define UNUSED(X) (void)(X)
#define __IO volatile

typedef enum { HAL_TICK_FREQ_1KHZ = 1U, HAL_TICK_FREQ_DEFAULT = HAL_TICK_FREQ_1KHZ } HAL_TickFreqTypeDef;
extern __IO uint32_t uwTick;
extern uint32_t SystemCoreClock;

HAL_StatusTypeDef HAL_Init(void);
HAL_StatusTypeDef HAL_DeInit(void);
void HAL_IncTick(void);
uint32_t HAL_GetTick(void);
void HAL_Delay(uint32_t Delay);
void HAL_SuspendTick(void);
void HAL_ResumeTick(void);
void HAL_NVIC_SetPriority(int32_t IRQn, uint32_t PreemptPriority, uint32_t SubPriority);
void HAL_NVIC_EnableIRQ(int32_t IRQn);
void HAL_NVIC_DisableIRQ(int32_t IRQn);
void HAL_NVIC_SetPriorityGrouping(uint32_t PriorityGroup);
void HAL_NVIC_SystemReset(void);

/* Cortex-M core: interrupts off/on, and wait for interrupt (on the host: the firmware is idle until the harness
 * moves time on or input arrives). */
void __disable_irq(void);
void __enable_irq(void);
void __WFI(void);
void __NOP(void);

/* IRQ numbers the usual CubeMX code names (values as in stm32f407xx.h) */
#define CAN1_RX0_IRQn 20
#define CAN1_TX_IRQn 19
#define USART1_IRQn 37
#define USART2_IRQn 38
#define USART3_IRQn 39
#define TIM6_DAC_IRQn 54
#define TIM7_IRQn 55
#define NVIC_PRIORITYGROUP_4 0x00000003U

/* ---------------------------------------------------------------------------------------------- peripherals */
typedef struct { uint32_t host_index; } CAN_TypeDef;
typedef struct { uint32_t host_index; } USART_TypeDef;
typedef struct { uint32_t host_index; } TIM_TypeDef;
typedef struct { uint32_t host_index; } GPIO_TypeDef;
typedef struct { uint32_t host_index; } I2C_TypeDef;

extern CAN_TypeDef host_CAN1, host_CAN2;
extern USART_TypeDef host_USART1, host_USART2, host_USART3, host_UART4, host_UART5, host_USART6;
extern TIM_TypeDef host_TIM2, host_TIM3, host_TIM4, host_TIM5, host_TIM6, host_TIM7;
extern GPIO_TypeDef host_GPIOA, host_GPIOB, host_GPIOC, host_GPIOD, host_GPIOE, host_GPIOH;
extern I2C_TypeDef host_I2C1, host_I2C2, host_I2C3;
#define CAN1 (&host_CAN1)
#define CAN2 (&host_CAN2)
#define USART1 (&host_USART1)
#define USART2 (&host_USART2)
#define USART3 (&host_USART3)
#define UART4 (&host_UART4)
#define UART5 (&host_UART5)
#define USART6 (&host_USART6)
#define TIM2 (&host_TIM2)
#define TIM3 (&host_TIM3)
#define TIM4 (&host_TIM4)
#define TIM5 (&host_TIM5)
#define TIM6 (&host_TIM6)
#define TIM7 (&host_TIM7)
#define GPIOA (&host_GPIOA)
#define GPIOB (&host_GPIOB)
#define GPIOC (&host_GPIOC)
#define GPIOD (&host_GPIOD)
#define GPIOE (&host_GPIOE)
#define GPIOH (&host_GPIOH)
#define I2C1 (&host_I2C1)
#define I2C2 (&host_I2C2)
#define I2C3 (&host_I2C3)

/* ---------------------------------------------------------------------------------------------- RCC (no-ops) */
typedef struct { uint32_t PLLState, PLLSource, PLLM, PLLN, PLLP, PLLQ; } RCC_PLLInitTypeDef;
typedef struct {
  uint32_t OscillatorType, HSEState, LSEState, HSIState, HSICalibrationValue, LSIState;
  RCC_PLLInitTypeDef PLL;
} RCC_OscInitTypeDef;
typedef struct { uint32_t ClockType, SYSCLKSource, AHBCLKDivider, APB1CLKDivider, APB2CLKDivider; } RCC_ClkInitTypeDef;
HAL_StatusTypeDef HAL_RCC_OscConfig(RCC_OscInitTypeDef *RCC_OscInitStruct);
HAL_StatusTypeDef HAL_RCC_ClockConfig(RCC_ClkInitTypeDef *RCC_ClkInitStruct, uint32_t FLatency);
uint32_t HAL_RCC_GetSysClockFreq(void);
uint32_t HAL_RCC_GetHCLKFreq(void);
uint32_t HAL_RCC_GetPCLK1Freq(void);
uint32_t HAL_RCC_GetPCLK2Freq(void);
void host_rcc_clock_enable(void);
#define RCC_OSCILLATORTYPE_HSE 0x00000001U
#define RCC_OSCILLATORTYPE_HSI 0x00000002U
#define RCC_HSE_ON 0x00010000U
#define RCC_HSI_ON 0x00000001U
#define RCC_HSICALIBRATION_DEFAULT 0x10U
#define RCC_PLL_ON 0x00000002U
#define RCC_PLL_NONE 0x00000000U
#define RCC_PLLSOURCE_HSE 0x00400000U
#define RCC_PLLSOURCE_HSI 0x00000000U
#define RCC_PLLP_DIV2 0x00000002U
#define RCC_CLOCKTYPE_SYSCLK 0x00000001U
#define RCC_CLOCKTYPE_HCLK 0x00000002U
#define RCC_CLOCKTYPE_PCLK1 0x00000004U
#define RCC_CLOCKTYPE_PCLK2 0x00000008U
#define RCC_SYSCLKSOURCE_PLLCLK 0x00000002U
#define RCC_SYSCLK_DIV1 0x00000000U
#define RCC_HCLK_DIV1 0x00000000U
#define RCC_HCLK_DIV2 0x00001000U
#define RCC_HCLK_DIV4 0x00001400U
#define FLASH_LATENCY_5 0x00000005U
#define PWR_REGULATOR_VOLTAGE_SCALE1 0x0000C000U
#define __HAL_RCC_PWR_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_PWR_VOLTAGESCALING_CONFIG(x) ((void)(x))
#define __HAL_RCC_GPIOA_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_GPIOB_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_GPIOC_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_GPIOD_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_GPIOH_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_CAN1_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_USART1_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_USART2_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_USART3_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_TIM6_CLK_ENABLE() host_rcc_clock_enable()
#define __HAL_RCC_TIM7_CLK_ENABLE() host_rcc_clock_enable()

/* ---------------------------------------------------------------------------------------------- GPIO (no-ops) */
typedef struct { uint32_t Pin, Mode, Pull, Speed, Alternate; } GPIO_InitTypeDef;
typedef enum { GPIO_PIN_RESET = 0, GPIO_PIN_SET } GPIO_PinState;
#define GPIO_PIN_0 0x0001U
#define GPIO_PIN_1 0x0002U
#define GPIO_PIN_2 0x0004U
#define GPIO_PIN_3 0x0008U
#define GPIO_PIN_9 0x0200U
#define GPIO_PIN_10 0x0400U
#define GPIO_PIN_11 0x0800U
#define GPIO_PIN_12 0x1000U
#define GPIO_PIN_13 0x2000U
#define GPIO_PIN_14 0x4000U
#define GPIO_PIN_15 0x8000U
#define GPIO_MODE_INPUT 0x00000000U
#define GPIO_MODE_OUTPUT_PP 0x00000001U
#define GPIO_MODE_AF_PP 0x00000002U
#define GPIO_NOPULL 0x00000000U
#define GPIO_PULLUP 0x00000001U
#define GPIO_SPEED_FREQ_LOW 0x00000000U
#define GPIO_SPEED_FREQ_VERY_HIGH 0x00000003U
#define GPIO_AF7_USART1 0x07U
#define GPIO_AF7_USART2 0x07U
#define GPIO_AF7_USART3 0x07U
#define GPIO_AF9_CAN1 0x09U
void HAL_GPIO_Init(GPIO_TypeDef *GPIOx, GPIO_InitTypeDef *GPIO_Init);
void HAL_GPIO_WritePin(GPIO_TypeDef *GPIOx, uint16_t GPIO_Pin, GPIO_PinState PinState);
GPIO_PinState HAL_GPIO_ReadPin(GPIO_TypeDef *GPIOx, uint16_t GPIO_Pin);
void HAL_GPIO_TogglePin(GPIO_TypeDef *GPIOx, uint16_t GPIO_Pin);

/* ---------------------------------------------------------------------------------------------- CAN (bxCAN) */
typedef enum {
  HAL_CAN_STATE_RESET = 0x00U, HAL_CAN_STATE_READY = 0x01U, HAL_CAN_STATE_LISTENING = 0x02U,
  HAL_CAN_STATE_SLEEP_PENDING = 0x03U, HAL_CAN_STATE_SLEEP_ACTIVE = 0x04U, HAL_CAN_STATE_ERROR = 0x05U
} HAL_CAN_StateTypeDef;
typedef struct {
  uint32_t Prescaler, Mode, SyncJumpWidth, TimeSeg1, TimeSeg2;
  FunctionalState TimeTriggeredMode, AutoBusOff, AutoWakeUp, AutoRetransmission, ReceiveFifoLocked,
      TransmitFifoPriority;
} CAN_InitTypeDef;
typedef struct {
  uint32_t FilterIdHigh, FilterIdLow, FilterMaskIdHigh, FilterMaskIdLow, FilterFIFOAssignment, FilterBank, FilterMode,
      FilterScale, FilterActivation, SlaveStartFilterBank;
} CAN_FilterTypeDef;
typedef struct {
  uint32_t StdId, ExtId, IDE, RTR, DLC;
  FunctionalState TransmitGlobalTime;
} CAN_TxHeaderTypeDef;
typedef struct { uint32_t StdId, ExtId, IDE, RTR, DLC, Timestamp, FilterMatchIndex; } CAN_RxHeaderTypeDef;
typedef struct __CAN_HandleTypeDef {
  CAN_TypeDef *Instance;
  CAN_InitTypeDef Init;
  __IO HAL_CAN_StateTypeDef State;
  __IO uint32_t ErrorCode;
} CAN_HandleTypeDef;

#define HAL_CAN_ERROR_NONE 0x00000000U
#define HAL_CAN_ERROR_FOV0 0x00000200U
#define HAL_CAN_ERROR_PARAM 0x00200000U
#define HAL_CAN_ERROR_NOT_READY 0x00080000U
#define HAL_CAN_ERROR_NOT_STARTED 0x00100000U
#define CAN_ID_STD 0x00000000U
#define CAN_ID_EXT 0x00000004U
#define CAN_RTR_DATA 0x00000000U
#define CAN_RTR_REMOTE 0x00000002U
#define CAN_RX_FIFO0 0x00000000U
#define CAN_RX_FIFO1 0x00000001U
#define CAN_FILTER_FIFO0 0x00000000U
#define CAN_FILTER_FIFO1 0x00000001U
#define CAN_FILTERMODE_IDMASK 0x00000000U
#define CAN_FILTERMODE_IDLIST 0x00000001U
#define CAN_FILTERSCALE_16BIT 0x00000000U
#define CAN_FILTERSCALE_32BIT 0x00000001U
#define CAN_FILTER_DISABLE 0x00000000U
#define CAN_FILTER_ENABLE 0x00000001U
#define CAN_MODE_NORMAL 0x00000000U
#define CAN_MODE_LOOPBACK 0x40000000U
#define CAN_MODE_SILENT 0x80000000U
#define CAN_SJW_1TQ 0x00000000U
#define CAN_BS1_11TQ 0x000A0000U
#define CAN_BS1_13TQ 0x000C0000U
#define CAN_BS2_2TQ 0x00100000U
#define CAN_BS2_4TQ 0x00300000U
#define CAN_TX_MAILBOX0 0x00000001U
#define CAN_TX_MAILBOX1 0x00000002U
#define CAN_TX_MAILBOX2 0x00000004U
#define CAN_IT_TX_MAILBOX_EMPTY 0x00000001U
#define CAN_IT_RX_FIFO0_MSG_PENDING 0x00000002U
#define CAN_IT_RX_FIFO0_FULL 0x00000004U
#define CAN_IT_RX_FIFO0_OVERRUN 0x00000008U
#define CAN_IT_RX_FIFO1_MSG_PENDING 0x00000010U

HAL_StatusTypeDef HAL_CAN_Init(CAN_HandleTypeDef *hcan);
HAL_StatusTypeDef HAL_CAN_DeInit(CAN_HandleTypeDef *hcan);
void HAL_CAN_MspInit(CAN_HandleTypeDef *hcan);
HAL_StatusTypeDef HAL_CAN_ConfigFilter(CAN_HandleTypeDef *hcan, const CAN_FilterTypeDef *sFilterConfig);
HAL_StatusTypeDef HAL_CAN_Start(CAN_HandleTypeDef *hcan);
HAL_StatusTypeDef HAL_CAN_Stop(CAN_HandleTypeDef *hcan);
HAL_StatusTypeDef HAL_CAN_ActivateNotification(CAN_HandleTypeDef *hcan, uint32_t ActiveITs);
HAL_StatusTypeDef HAL_CAN_DeactivateNotification(CAN_HandleTypeDef *hcan, uint32_t InactiveITs);
HAL_StatusTypeDef HAL_CAN_AddTxMessage(CAN_HandleTypeDef *hcan, const CAN_TxHeaderTypeDef *pHeader,
                                       const uint8_t aData[], uint32_t *pTxMailbox);
uint32_t HAL_CAN_GetTxMailboxesFreeLevel(const CAN_HandleTypeDef *hcan);
HAL_StatusTypeDef HAL_CAN_GetRxMessage(CAN_HandleTypeDef *hcan, uint32_t RxFifo, CAN_RxHeaderTypeDef *pHeader,
                                       uint8_t aData[]);
uint32_t HAL_CAN_GetRxFifoFillLevel(const CAN_HandleTypeDef *hcan, uint32_t RxFifo);
HAL_CAN_StateTypeDef HAL_CAN_GetState(const CAN_HandleTypeDef *hcan);
uint32_t HAL_CAN_GetError(const CAN_HandleTypeDef *hcan);
void HAL_CAN_RxFifo0MsgPendingCallback(CAN_HandleTypeDef *hcan);
void HAL_CAN_ErrorCallback(CAN_HandleTypeDef *hcan);

/* ---------------------------------------------------------------------------------------------- UART */
typedef enum {
  HAL_UART_STATE_RESET = 0x00U, HAL_UART_STATE_READY = 0x20U, HAL_UART_STATE_BUSY = 0x24U,
  HAL_UART_STATE_BUSY_TX = 0x21U, HAL_UART_STATE_BUSY_RX = 0x22U, HAL_UART_STATE_BUSY_TX_RX = 0x23U,
  HAL_UART_STATE_TIMEOUT = 0xA0U, HAL_UART_STATE_ERROR = 0xE0U
} HAL_UART_StateTypeDef;
typedef struct { uint32_t BaudRate, WordLength, StopBits, Parity, Mode, HwFlowCtl, OverSampling; } UART_InitTypeDef;
typedef struct __UART_HandleTypeDef {
  USART_TypeDef *Instance;
  UART_InitTypeDef Init;
  const uint8_t *pTxBuffPtr;
  uint16_t TxXferSize;
  __IO uint16_t TxXferCount;
  uint8_t *pRxBuffPtr;
  uint16_t RxXferSize;
  __IO uint16_t RxXferCount;
  HAL_LockTypeDef Lock;
  __IO HAL_UART_StateTypeDef gState;
  __IO HAL_UART_StateTypeDef RxState;
  __IO uint32_t ErrorCode;
} UART_HandleTypeDef;
#define HAL_UART_ERROR_NONE 0x00000000U
#define HAL_UART_ERROR_ORE 0x00000008U
#define UART_WORDLENGTH_8B 0x00000000U
#define UART_STOPBITS_1 0x00000000U
#define UART_PARITY_NONE 0x00000000U
#define UART_MODE_RX 0x00000004U
#define UART_MODE_TX 0x00000008U
#define UART_MODE_TX_RX 0x0000000CU
#define UART_HWCONTROL_NONE 0x00000000U
#define UART_OVERSAMPLING_16 0x00000000U

HAL_StatusTypeDef HAL_UART_Init(UART_HandleTypeDef *huart);
HAL_StatusTypeDef HAL_UART_DeInit(UART_HandleTypeDef *huart);
void HAL_UART_MspInit(UART_HandleTypeDef *huart);
HAL_StatusTypeDef HAL_UART_Transmit(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size, uint32_t Timeout);
HAL_StatusTypeDef HAL_UART_Receive(UART_HandleTypeDef *huart, uint8_t *pData, uint16_t Size, uint32_t Timeout);
HAL_StatusTypeDef HAL_UART_Transmit_IT(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size);
HAL_StatusTypeDef HAL_UART_Receive_IT(UART_HandleTypeDef *huart, uint8_t *pData, uint16_t Size);
HAL_StatusTypeDef HAL_UART_Transmit_DMA(UART_HandleTypeDef *huart, const uint8_t *pData, uint16_t Size);
HAL_StatusTypeDef HAL_UART_AbortReceive_IT(UART_HandleTypeDef *huart);
HAL_UART_StateTypeDef HAL_UART_GetState(const UART_HandleTypeDef *huart);
uint32_t HAL_UART_GetError(const UART_HandleTypeDef *huart);
void HAL_UART_TxCpltCallback(UART_HandleTypeDef *huart);
void HAL_UART_RxCpltCallback(UART_HandleTypeDef *huart);
void HAL_UART_ErrorCallback(UART_HandleTypeDef *huart);

/* ---------------------------------------------------------------------------------------------- TIM (base) */
typedef enum {
  HAL_TIM_STATE_RESET = 0x00U, HAL_TIM_STATE_READY = 0x01U, HAL_TIM_STATE_BUSY = 0x02U,
  HAL_TIM_STATE_TIMEOUT = 0x03U, HAL_TIM_STATE_ERROR = 0x04U
} HAL_TIM_StateTypeDef;
typedef enum { HAL_TIM_ACTIVE_CHANNEL_CLEARED = 0x00U } HAL_TIM_ActiveChannel;
typedef struct {
  uint32_t Prescaler, CounterMode, Period, ClockDivision, RepetitionCounter, AutoReloadPreload;
} TIM_Base_InitTypeDef;
typedef struct { uint32_t ClockSource, ClockPolarity, ClockPrescaler, ClockFilter; } TIM_ClockConfigTypeDef;
typedef struct { uint32_t MasterOutputTrigger, MasterSlaveMode; } TIM_MasterConfigTypeDef;
typedef struct __TIM_HandleTypeDef {
  TIM_TypeDef *Instance;
  TIM_Base_InitTypeDef Init;
  HAL_TIM_ActiveChannel Channel;
  HAL_LockTypeDef Lock;
  __IO HAL_TIM_StateTypeDef State;
} TIM_HandleTypeDef;
#define TIM_COUNTERMODE_UP 0x00000000U
#define TIM_CLOCKDIVISION_DIV1 0x00000000U
#define TIM_AUTORELOAD_PRELOAD_DISABLE 0x00000000U
#define TIM_AUTORELOAD_PRELOAD_ENABLE 0x00000080U
#define TIM_CLOCKSOURCE_INTERNAL 0x00001000U
#define TIM_TRGO_RESET 0x00000000U
#define TIM_MASTERSLAVEMODE_DISABLE 0x00000000U
HAL_StatusTypeDef HAL_TIM_Base_Init(TIM_HandleTypeDef *htim);
HAL_StatusTypeDef HAL_TIM_Base_DeInit(TIM_HandleTypeDef *htim);
void HAL_TIM_Base_MspInit(TIM_HandleTypeDef *htim);
HAL_StatusTypeDef HAL_TIM_Base_Start_IT(TIM_HandleTypeDef *htim);
HAL_StatusTypeDef HAL_TIM_Base_Stop_IT(TIM_HandleTypeDef *htim);
HAL_StatusTypeDef HAL_TIM_ConfigClockSource(TIM_HandleTypeDef *htim, const TIM_ClockConfigTypeDef *sClockSourceConfig);
HAL_StatusTypeDef HAL_TIMEx_MasterConfigSynchronization(TIM_HandleTypeDef *htim,
                                                        const TIM_MasterConfigTypeDef *sMasterConfig);
void HAL_TIM_PeriodElapsedCallback(TIM_HandleTypeDef *htim);

/* ---------------------------------------------------------------------------------------------- I2C (blocking) */
/* Register reads and writes of the devices on the bus (HAL_I2C_Mem_Read/_Write, HAL_I2C_IsDeviceReady): on the host
 * each device is a register file the harness sets ("R"/"D" lines, docs/firmware.md); an absent device NACKs. */
typedef struct {
  uint32_t ClockSpeed, DutyCycle, OwnAddress1, AddressingMode, DualAddressMode, OwnAddress2, GeneralCallMode,
      NoStretchMode;
} I2C_InitTypeDef;
typedef enum { HAL_I2C_STATE_RESET = 0x00U, HAL_I2C_STATE_READY = 0x20U, HAL_I2C_STATE_BUSY = 0x24U } HAL_I2C_StateTypeDef;
typedef struct __I2C_HandleTypeDef {
  I2C_TypeDef *Instance;
  I2C_InitTypeDef Init;
  HAL_LockTypeDef Lock;
  __IO HAL_I2C_StateTypeDef State;
  __IO uint32_t ErrorCode;
} I2C_HandleTypeDef;
#define I2C_DUTYCYCLE_2 0x00000000U
#define I2C_ADDRESSINGMODE_7BIT 0x00004000U
#define I2C_DUALADDRESS_DISABLE 0x00000000U
#define I2C_GENERALCALL_DISABLE 0x00000000U
#define I2C_NOSTRETCH_DISABLE 0x00000000U
#define I2C_MEMADD_SIZE_8BIT 0x00000001U
#define HAL_I2C_ERROR_NONE 0x00000000U
#define HAL_I2C_ERROR_AF 0x00000004U
HAL_StatusTypeDef HAL_I2C_Init(I2C_HandleTypeDef *hi2c);
HAL_StatusTypeDef HAL_I2C_DeInit(I2C_HandleTypeDef *hi2c);
void HAL_I2C_MspInit(I2C_HandleTypeDef *hi2c);
HAL_StatusTypeDef HAL_I2C_IsDeviceReady(I2C_HandleTypeDef *hi2c, uint16_t DevAddress, uint32_t Trials, uint32_t Timeout);
HAL_StatusTypeDef HAL_I2C_Mem_Read(I2C_HandleTypeDef *hi2c, uint16_t DevAddress, uint16_t MemAddress,
                                   uint16_t MemAddSize, uint8_t *pData, uint16_t Size, uint32_t Timeout);
HAL_StatusTypeDef HAL_I2C_Mem_Write(I2C_HandleTypeDef *hi2c, uint16_t DevAddress, uint16_t MemAddress,
                                    uint16_t MemAddSize, const uint8_t *pData, uint16_t Size, uint32_t Timeout);
uint32_t HAL_I2C_GetError(const I2C_HandleTypeDef *hi2c);

/* IRQ handlers of a CubeMX stm32f4xx_it.c (no-ops on the host: interrupts reach the callbacks directly) */
void HAL_CAN_IRQHandler(CAN_HandleTypeDef *hcan);
void HAL_UART_IRQHandler(UART_HandleTypeDef *huart);
void HAL_TIM_IRQHandler(TIM_HandleTypeDef *htim);

#ifdef __cplusplus
}
#endif
#endif /* STM32F4XX_HAL_H */
