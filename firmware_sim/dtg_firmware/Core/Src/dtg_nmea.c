/* The GNSS input: assembles NMEA sentences byte by byte and keeps the latest fix from GGA and RMC. A sentence
 * without a fix (GGA quality 0, RMC status V) clears the position until a fix comes back; RMC carries no altitude,
 * so the altitude of the last GGA stays. */
#include "dtg_nmea.h"

#include <stdlib.h>
#include <string.h>

nmea_state gnss;

static char assembling[128];            /* the receive side: bytes since the last '$' */
static uint32_t assembled;
static char sentence[NMEA_SENTENCE_MAX + 1]; /* the sentence being parsed, NUL-terminated: 83 bytes */

static int hex_digit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The n-th comma-separated field (0 = the address, e.g. "GPGGA") of `sentence`, copied into `out`. */
static const char *field(int n, char *out, size_t out_size) {
  const char *p = sentence + 1;
  for (int i = 0; i < n && p != NULL; i++) {
    p = strchr(p, ',');
    if (p != NULL) p++;
  }
  size_t len = 0;
  if (p != NULL) {
    while (p[len] != '\0' && p[len] != ',' && p[len] != '*') len++;
  }
  if (len >= out_size) len = out_size - 1;
  if (p != NULL) memcpy(out, p, len);
  out[len] = '\0';
  return out;
}

/* ddmm.mmmm / dddmm.mmmm and a hemisphere letter to signed degrees; 0 when either is missing. */
static int angle(const char *text, const char *hemisphere, double *deg) {
  if (text[0] == '\0' || hemisphere[0] == '\0') return 0;
  double raw = strtod(text, NULL);
  double whole = (double)(long)(raw / 100.0);
  double value = whole + (raw - whole * 100.0) / 60.0;
  if (hemisphere[0] == 'S' || hemisphere[0] == 'W') value = -value;
  *deg = value;
  return 1;
}

static void parse_sentence(void) {
  char address[8], a[24], b[4], c[24], d[4], e[24];
  field(0, address, sizeof address);
  size_t len = strlen(address);
  if (len < 5) return;
  const char *type = address + len - 3;
  if (strcmp(type, "GGA") == 0) {
    field(6, e, sizeof e);
    if (e[0] == '\0' || e[0] == '0') {
      gnss.has_fix = 0;
      return;
    }
    double lat, lon;
    if (!angle(field(2, a, sizeof a), field(3, b, sizeof b), &lat) ||
        !angle(field(4, c, sizeof c), field(5, d, sizeof d), &lon)) {
      gnss.has_fix = 0;
      return;
    }
    gnss.latitude_deg = lat;
    gnss.longitude_deg = lon;
    gnss.has_fix = 1;
    field(9, e, sizeof e);
    gnss.has_altitude = e[0] != '\0';
    if (gnss.has_altitude) gnss.altitude_m = strtod(e, NULL);
    gnss.fixes++;
  } else if (strcmp(type, "RMC") == 0) {
    field(2, e, sizeof e);
    double lat, lon;
    if (e[0] != 'A' || !angle(field(3, a, sizeof a), field(4, b, sizeof b), &lat) ||
        !angle(field(5, c, sizeof c), field(6, d, sizeof d), &lon)) {
      gnss.has_fix = 0;
      return;
    }
    gnss.latitude_deg = lat;
    gnss.longitude_deg = lon;
    gnss.has_fix = 1;
    gnss.fixes++;
  }
}

static void take_line(const char *line, uint32_t len) {
  /* strip the CR LF; check "*hh" against the XOR of the characters between '$' and '*' */
  while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n')) len--;
  if (len + 2 > NMEA_SENTENCE_MAX) {
    gnss.too_long++;
    return;
  }
  memcpy(sentence, line, len);
  sentence[len] = '\0';
  char *star = strrchr(sentence, '*');
  if (star == NULL || star[1] == '\0' || star[2] == '\0') {
    gnss.checksum_errors++;
    return;
  }
  uint8_t sum = 0;
  for (const char *p = sentence + 1; p < star; p++) sum ^= (uint8_t)*p;
  int hi = hex_digit(star[1]), lo = hex_digit(star[2]);
  if (hi < 0 || lo < 0 || sum != (uint8_t)(hi * 16 + lo)) {
    gnss.checksum_errors++;
    return;
  }
  gnss.sentences++;
  parse_sentence();
}

void nmea_feed_byte(uint8_t byte) {
  if (byte == '$') assembled = 0;
  if (assembled < sizeof assembling) assembling[assembled++] = (char)byte;
  else if (byte != '\n') return; /* longer than the buffer: dropped at its end */
  if (byte == '\n' && assembled > 0 && assembling[0] == '$') {
    take_line(assembling, assembled);
    assembled = 0;
  }
}
