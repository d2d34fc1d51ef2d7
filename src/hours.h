/* hours.h - a queue's business hours: time zone, working days, daily open
 * intervals and holidays; whether the desk is open, and when it opens next.
 *
 * Configured as an [hours NAME] group (ticket-milter.conf(5)):
 *   timezone = Asia/Riyadh          IANA zone name, or UTC
 *   days     = sun-thu              days and ranges, ';'-separated; a range
 *                                   may wrap the week end (sat-wed)
 *   open     = 09:00-17:00          one or more daily intervals, ';'-separated,
 *                                   24-hour clock, start before end, no overlap;
 *                                   "24:00" may end an interval
 *   holidays = 2026-12-25;2027-03-30..2027-04-02   dates and inclusive ranges
 *
 * All arithmetic is done on the local wall clock of the zone (GTimeZone), so
 * daylight-saving changes move opening times the way a person expects.
 * Searches look at most 400 days ahead; a calendar that never opens in that
 * window (every day a holiday) makes the "next" functions return 0.
 *
 * Ownership: a TmHours owns its strings and zone; the getters' strings live
 * as long as it does. Thread safety: read-only after tm_hours_new(), so any
 * number of threads may query one TmHours at once.
 */
#ifndef TM_HOURS_H
#define TM_HOURS_H

#include <glib.h>

#define TM_HOURS_ERROR (tm_hours_error_quark ())
GQuark tm_hours_error_quark (void);
typedef enum {
  TM_HOURS_ERROR_INVALID,    /* message: "KEY: what is wrong", KEY one of
                                timezone, days, open, holidays */
} TmHoursError;

typedef struct TmHours TmHours;  /* opaque */

/* Any argument but name may be NULL for its default: timezone UTC, days
 * mon-fri, open 09:00-17:00, no holidays. Returns NULL with *error set. */
TmHours *tm_hours_new (const char *name, const char *timezone, const char *days,
                       const char *open, const char *holidays,
                       GError **error) G_GNUC_WARN_UNUSED_RESULT;
/* Frees and clears the caller's pointer; NULL is fine. */
void tm_hours_free (TmHours **hours);

const char *tm_hours_name (const TmHours *hours);
/* The zone's identifier as configured, e.g. "Asia/Riyadh". */
const char *tm_hours_timezone (const TmHours *hours);
/* The daily intervals normalised, e.g. "09:00-17:00" or "08:00-12:00, 13:00-17:00". */
const char *tm_hours_open_text (const TmHours *hours);

/* TRUE when NOW (Unix seconds) falls on a working day that is no holiday,
 * inside one of the day's intervals (start inclusive, end exclusive). */
gboolean tm_hours_is_open (const TmHours *hours, gint64 now);

/* NOW itself when open; else the start of the next open interval; 0 when
 * none within 400 days. */
gint64 tm_hours_next_open (const TmHours *hours, gint64 now);

/* The moment at which SECONDS of open time have passed, counting from START
 * (time outside business hours does not count): the due time of a response
 * target in business hours. 0 when it would lie beyond 400 days. */
gint64 tm_hours_add_open_time (const TmHours *hours, gint64 start, gint64 seconds);

/* WHEN as local wall-clock time of the zone, "2026-11-24 09:00". New string. */
char *tm_hours_format_local (const TmHours *hours, gint64 when) G_GNUC_WARN_UNUSED_RESULT;

#endif
