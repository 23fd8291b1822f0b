/* The host HAL's base timers: periods in whole milliseconds of the scenario clock. */
#include "host_hal_internal.h"

#include <string.h>

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

