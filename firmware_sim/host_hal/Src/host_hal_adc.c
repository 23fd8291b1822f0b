/* The host HAL's ADC: ADC1's regular channel, converted on software start and polled. The input of each channel is
 * what the harness last set with a "V <channel> <counts>" line on the control channel (the unit's analog sensors,
 * docs/firmware.md); a channel it never set reads 0 (an open input). ADC2 and ADC3 convert the same inputs. */
#include "host_hal_internal.h"

ADC_TypeDef host_ADC1 = {0}, host_ADC2 = {1}, host_ADC3 = {2};

static uint32_t inputs[HOST_ADC_CHANNELS];
static uint32_t selected[3]; /* each ADC's configured regular channel (rank 1) */
static uint32_t converted[3];

void adc_set_input(uint32_t channel, uint32_t counts) {
  if (channel >= HOST_ADC_CHANNELS) host_fatal("control channel: ADC input %u does not exist (IN0..IN15)", channel);
  if (counts > HOST_ADC_MAX) host_fatal("control channel: ADC input %u set to %u, beyond 12 bits", channel, counts);
  inputs[channel] = counts;
}

__attribute__((weak)) void HAL_ADC_MspInit(ADC_HandleTypeDef *hadc) { UNUSED(hadc); }

HAL_StatusTypeDef HAL_ADC_Init(ADC_HandleTypeDef *hadc) {
  host_setup();
  if (hadc == NULL || hadc->Instance == NULL) return HAL_ERROR;
  if (hadc->Init.Resolution != ADC_RESOLUTION_12B || hadc->Init.DataAlign != ADC_DATAALIGN_RIGHT)
    host_fatal("ADC: the host HAL converts 12-bit right-aligned only");
  HAL_ADC_MspInit(hadc);
  hadc->State = HAL_ADC_STATE_READY;
  hadc->ErrorCode = 0;
  return HAL_OK;
}

HAL_StatusTypeDef HAL_ADC_DeInit(ADC_HandleTypeDef *hadc) {
  hadc->State = HAL_ADC_STATE_RESET;
  return HAL_OK;
}

HAL_StatusTypeDef HAL_ADC_ConfigChannel(ADC_HandleTypeDef *hadc, ADC_ChannelConfTypeDef *sConfig) {
  if (hadc->State == HAL_ADC_STATE_RESET || sConfig->Channel >= HOST_ADC_CHANNELS) return HAL_ERROR;
  if (sConfig->Rank == 1U) selected[hadc->Instance->host_index] = sConfig->Channel;
  return HAL_OK;
}

HAL_StatusTypeDef HAL_ADC_Start(ADC_HandleTypeDef *hadc) {
  if (hadc->State == HAL_ADC_STATE_RESET) return HAL_ERROR;
  uint32_t i = hadc->Instance->host_index;
  converted[i] = inputs[selected[i]]; /* the conversion takes no scenario time */
  hadc->State = HAL_ADC_STATE_READY | HAL_ADC_STATE_REG_EOC;
  return HAL_OK;
}

HAL_StatusTypeDef HAL_ADC_PollForConversion(ADC_HandleTypeDef *hadc, uint32_t Timeout) {
  UNUSED(Timeout);
  return (hadc->State & HAL_ADC_STATE_REG_EOC) ? HAL_OK : HAL_ERROR;
}

uint32_t HAL_ADC_GetValue(ADC_HandleTypeDef *hadc) {
  hadc->State &= ~HAL_ADC_STATE_REG_EOC;
  return converted[hadc->Instance->host_index];
}

HAL_StatusTypeDef HAL_ADC_Stop(ADC_HandleTypeDef *hadc) {
  hadc->State = HAL_ADC_STATE_READY;
  return HAL_OK;
}
