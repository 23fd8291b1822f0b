/* The host HAL's USARTs: each a pty; reception by interrupt, transmission blocking or by interrupt/DMA. */
#include "host_hal_internal.h"

#include <string.h>

void uart_deliver(host_port *port, uint8_t byte) {
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

int deliver_tx_complete(void) {
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

