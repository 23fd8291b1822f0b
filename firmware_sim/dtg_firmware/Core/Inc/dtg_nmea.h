/* The GNSS input: NMEA 0183 GGA and RMC from the receiver, the latest fix. */
#ifndef DTG_NMEA_H
#define DTG_NMEA_H

#include <stdint.h>

#define NMEA_SENTENCE_MAX 82U /* NMEA 0183: at most 82 characters from '$' to the CR LF */

typedef struct {
  uint8_t has_fix, has_altitude;
  double latitude_deg, longitude_deg, altitude_m;
  uint32_t sentences, checksum_errors, too_long, fixes;
} nmea_state;

extern nmea_state gnss;

void nmea_feed_byte(uint8_t byte); /* from the UART's receive interrupt */

#endif
