/* The DTG unit's sample firmware (dtg-hil, docs/firmware.md): CubeMX-style main.h. */
#ifndef MAIN_H
#define MAIN_H

#include "stm32f4xx_hal.h"

extern CAN_HandleTypeDef hcan1;   /* the vehicle bus (OBD-II 500 kbit/s) */
extern UART_HandleTypeDef huart1; /* the link to the Android phone, 921600 8N1 */
extern UART_HandleTypeDef huart2; /* the GNSS receiver's NMEA, 9600 8N1 */
extern TIM_HandleTypeDef htim6;   /* the 500 ms tick: answer timeouts and poll cycles */
extern I2C_HandleTypeDef hi2c1;   /* the unit's sensors: brake-pressure ADC (0x48), accelerometer (0x6A) */

void Error_Handler(void);

#endif
