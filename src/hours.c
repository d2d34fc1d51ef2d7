/* hours.c - business hours of a queue: parsing the [hours NAME] keys and
 * answering "is the desk open?", "when does it open next?" and "when is a
 * response due, counting only open time?".
 *
 * Synopsis:
 *   TmHours *hours = tm_hours_new ("office", "Asia/Riyadh", "sun-thu",
 *                                  "09:00-17:00", "2026-12-25", &error);
 *   tm_hours_is_open (hours, now);            TRUE or FALSE
 *   tm_hours_next_open (hours, now);          now, a later moment, or 0
 *   tm_hours_add_open_time (hours, t, 3600);  a later moment, or 0
 *   tm_hours_free (&hours);
 *
 * Accepted syntax (errors are "KEY: what is wrong", KEY being timezone, days,
 * open or holidays, so that the configuration loader can prefix file and
 * group):
 *   timezone  an IANA identifier GLib knows (tzdata), or "UTC"; absolute file
 *             names are refused, because the key names a zone, not a file.
 *   days      sun mon tue wed thu fri sat, or the full English names, in any
 *             case; ranges "sun-thu", which may wrap: "sat-wed" is sat, sun,
 *             mon, tue, wed. Items are ';'-separated; empty items (a trailing
 *             ';' as GKeyFile writes lists) are ignored, but at least one day
 *             is needed.
 *   open      "H:MM-H:MM" or "HH:MM-HH:MM", ';'-separated, start before end,
 *             hours 0-23, "24:00" only as an end. Intervals may be given in
 *             any order; they are sorted and may touch but not overlap.
 *   holidays  "YYYY-MM-DD" and inclusive ranges "YYYY-MM-DD..YYYY-MM-DD",
 *             real calendar dates only (2026-02-30 is refused), range start
 *             not after its end.
 * A key given as an empty string (or only blanks and ';') is an error: NULL
 * is how a caller asks for the default, so "" means a value was written and
 * is missing.
 *
 * How the searches work: every question walks the zone's local calendar one
 * day at a time, starting the day before NOW's local date (so that odd
 * daylight-saving edges cannot hide an interval that is still running), and
 * turns each open interval of a working, non-holiday day into two instants
 * with g_date_time_new() in the zone. So an interval "09:00-17:00" starts at
 * 09:00 on the wall clock on a day whose clocks jump, and is an hour shorter
 * or longer in absolute time when the jump falls inside it. A wall-clock time
 * that does not exist (inside a spring-forward gap) becomes, in GLib, the first
 * instant after the gap, so an interval lying wholly in the gap is empty that
 * day; a time that happens twice (autumn) is taken as its standard-time, that
 * is later, occurrence. The walk stops after 400 days; time beyond the years
 * GDateTime can represent (0001-9999) counts as closed.
 *
 * Limits: minute resolution for opening times; one interval list for every
 * working day (no per-day hours).
 *
 * Ownership: a TmHours owns its strings, its interval and holiday arrays and a
 * reference to its GTimeZone. It is never changed after tm_hours_new(), and
 * GTimeZone is thread-safe, so concurrent queries need no locking.
 */
#include "hours.h"

#include <string.h>

/* How far the "next" searches look, in local calendar days (hours.h). */
#define SEARCH_DAYS 400

#define MINUTES_PER_DAY (24 * 60)

typedef struct {
  int start_minute;          /* minutes after local midnight, 0..1439 */
  int end_minute;            /* exclusive, start_minute+1..1440 (24:00) */
} OpenInterval;

typedef struct {
  guint32 first_julian;      /* GDate Julian day numbers, inclusive */
  guint32 last_julian;
} HolidayRange;

struct TmHours {
  char *name;
  char *timezone_id;         /* as configured, e.g. "Asia/Riyadh" */
  GTimeZone *zone;
  gboolean working_day[7];   /* indexed 0 = Sunday .. 6 = Saturday */
  GArray *intervals;         /* of OpenInterval, sorted, not overlapping */
  char *open_text;           /* "08:00-12:00, 13:00-17:00" */
  GArray *holidays;          /* of HolidayRange, in configuration order */
};

G_DEFINE_QUARK (tm-hours-error-quark, tm_hours_error)

static const char *const day_abbreviations[7] = {
  "sun", "mon", "tue", "wed", "thu", "fri", "sat",
};
static const char *const day_full_names[7] = {
  "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
};

static void
set_invalid (GError **error, const char *key, const char *format, ...) G_GNUC_PRINTF (3, 4);

static void
set_invalid (GError **error, const char *key, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, TM_HOURS_ERROR, TM_HOURS_ERROR_INVALID, "%s: %s", key, what);
}

/* Splits VALUE at ';' into trimmed, non-empty items. Returns NULL (with the
 * error set) when nothing is left, since an empty value means a value the
 * admin meant to write is missing. */
static GPtrArray *
split_items (const char *value, const char *key, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (value, ";", -1);
  g_autoptr (GPtrArray) items = g_ptr_array_new_with_free_func (g_free);
  for (gsize i = 0; parts[i] != NULL; i++)
    {
      char *item = g_strstrip (parts[i]);
      if (*item != '\0')
        g_ptr_array_add (items, g_strdup (item));
    }
  if (items->len == 0)
    {
      set_invalid (error, key, "the value is empty; leave the key out for the default");
      return NULL;
    }
  return g_steal_pointer (&items);
}

/* ---- timezone ---------------------------------------------------------- */

static GTimeZone *
parse_timezone (const char *value, char **identifier_out, GError **error)
{
  g_autofree char *identifier = g_strstrip (g_strdup (value));
  if (*identifier == '\0')
    {
      set_invalid (error, "timezone", "the value is empty; leave the key out for UTC");
      return NULL;
    }
  /* GLib would read an absolute path as a zone file; the key names a zone. */
  if (identifier[0] == '/' || strstr (identifier, "..") != NULL)
    {
      set_invalid (error, "timezone", "\"%s\" is not a time zone name such as Asia/Riyadh",
                   identifier);
      return NULL;
    }
  GTimeZone *zone = g_time_zone_new_identifier (identifier);
  if (zone == NULL)
    {
      set_invalid (error, "timezone",
                   "\"%s\" is not a known time zone; use an IANA name such as Asia/Riyadh, or UTC",
                   identifier);
      return NULL;
    }
  *identifier_out = g_steal_pointer (&identifier);
  return zone;
}

/* ---- days -------------------------------------------------------------- */

/* 0 = Sunday .. 6 = Saturday, or -1. */
static int
day_index (const char *name)
{
  for (int day = 0; day < 7; day++)
    if (g_ascii_strcasecmp (name, day_abbreviations[day]) == 0
        || g_ascii_strcasecmp (name, day_full_names[day]) == 0)
      return day;
  return -1;
}

static gboolean
parse_days (const char *value, gboolean working_day[7], GError **error)
{
  g_autoptr (GPtrArray) items = split_items (value, "days", error);
  if (items == NULL)
    return FALSE;
  for (guint i = 0; i < items->len; i++)
    {
      const char *item = g_ptr_array_index (items, i);
      g_auto (GStrv) ends = g_strsplit (item, "-", -1);
      guint count = g_strv_length (ends);
      int first = -1, last = -1;
      if (count == 1 || count == 2)
        {
          first = day_index (g_strstrip (ends[0]));
          last = count == 2 ? day_index (g_strstrip (ends[1])) : first;
        }
      if (first < 0 || last < 0)
        {
          set_invalid (error, "days", "\"%s\" is not a day or range such as sun-thu", item);
          return FALSE;
        }
      /* A range runs forward through the week and may wrap: sat-wed. */
      for (int day = first;; day = (day + 1) % 7)
        {
          working_day[day] = TRUE;
          if (day == last)
            break;
        }
    }
  return TRUE;
}

/* ---- open -------------------------------------------------------------- */

/* "9:00", "09:00" or "24:00" -> minutes after midnight; -1 when malformed. */
static int
parse_clock (const char *text)
{
  const char *at = text;
  int hour = 0, digits = 0;
  while (g_ascii_isdigit (*at) && digits < 3)
    {
      hour = hour * 10 + (*at - '0');
      at++;
      digits++;
    }
  if (digits < 1 || digits > 2 || *at != ':')
    return -1;
  at++;
  if (!g_ascii_isdigit (at[0]) || !g_ascii_isdigit (at[1]) || at[2] != '\0')
    return -1;
  int minute = (at[0] - '0') * 10 + (at[1] - '0');
  if (minute > 59 || hour > 24 || (hour == 24 && minute != 0))
    return -1;
  return hour * 60 + minute;
}

static int
compare_intervals (gconstpointer a, gconstpointer b)
{
  const OpenInterval *left = a, *right = b;
  return (left->start_minute > right->start_minute) - (left->start_minute < right->start_minute);
}

static void
append_clock (GString *text, int minute_of_day)
{
  g_string_append_printf (text, "%02d:%02d", minute_of_day / 60, minute_of_day % 60);
}

static GArray *
parse_open (const char *value, char **text_out, GError **error)
{
  g_autoptr (GPtrArray) items = split_items (value, "open", error);
  if (items == NULL)
    return NULL;
  g_autoptr (GArray) intervals = g_array_new (FALSE, FALSE, sizeof (OpenInterval));
  for (guint i = 0; i < items->len; i++)
    {
      const char *item = g_ptr_array_index (items, i);
      g_auto (GStrv) ends = g_strsplit (item, "-", -1);
      if (g_strv_length (ends) != 2)
        {
          set_invalid (error, "open", "\"%s\" is not an interval such as 09:00-17:00", item);
          return NULL;
        }
      int start = parse_clock (g_strstrip (ends[0]));
      int end = parse_clock (g_strstrip (ends[1]));
      if (start < 0 || end < 0)
        {
          set_invalid (error, "open",
                       "\"%s\" is not an interval such as 09:00-17:00 (hours 00-23, 24:00 only as an end)",
                       item);
          return NULL;
        }
      if (start == MINUTES_PER_DAY)
        {
          set_invalid (error, "open", "\"%s\" starts at 24:00; a day's interval must start before it",
                       item);
          return NULL;
        }
      if (start >= end)
        {
          set_invalid (error, "open", "\"%s\" does not start before it ends", item);
          return NULL;
        }
      OpenInterval interval = { start, end };
      g_array_append_val (intervals, interval);
    }
  g_array_sort (intervals, compare_intervals);

  g_autoptr (GString) text = g_string_new (NULL);
  for (guint i = 0; i < intervals->len; i++)
    {
      const OpenInterval *interval = &g_array_index (intervals, OpenInterval, i);
      if (i > 0)
        {
          const OpenInterval *before = &g_array_index (intervals, OpenInterval, i - 1);
          if (before->end_minute > interval->start_minute)
            {
              g_autoptr (GString) pair = g_string_new (NULL);
              append_clock (pair, before->start_minute);
              g_string_append_c (pair, '-');
              append_clock (pair, before->end_minute);
              g_string_append (pair, " and ");
              append_clock (pair, interval->start_minute);
              g_string_append_c (pair, '-');
              append_clock (pair, interval->end_minute);
              set_invalid (error, "open", "intervals %s overlap", pair->str);
              return NULL;
            }
          g_string_append (text, ", ");
        }
      append_clock (text, interval->start_minute);
      g_string_append_c (text, '-');
      append_clock (text, interval->end_minute);
    }
  *text_out = g_string_free (g_steal_pointer (&text), FALSE);
  return g_steal_pointer (&intervals);
}

/* ---- holidays ---------------------------------------------------------- */

/* Strict "YYYY-MM-DD" naming a real date; 0 when not. */
static guint32
parse_date (const char *text)
{
  static const char pattern[] = "dddd-dd-dd";
  if (strlen (text) != sizeof pattern - 1)
    return 0;
  for (gsize i = 0; pattern[i] != '\0'; i++)
    if (pattern[i] == 'd' ? !g_ascii_isdigit (text[i]) : text[i] != pattern[i])
      return 0;
  int year = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
  int month = (text[5] - '0') * 10 + (text[6] - '0');
  int day = (text[8] - '0') * 10 + (text[9] - '0');
  if (month < 1 || month > 12 || day < 1
      || !g_date_valid_dmy ((GDateDay) day, (GDateMonth) month, (GDateYear) year))
    return 0;
  GDate date;
  g_date_clear (&date, 1);
  g_date_set_dmy (&date, (GDateDay) day, (GDateMonth) month, (GDateYear) year);
  return g_date_get_julian (&date);
}

static GArray *
parse_holidays (const char *value, GError **error)
{
  g_autoptr (GPtrArray) items = split_items (value, "holidays", error);
  if (items == NULL)
    return NULL;
  g_autoptr (GArray) holidays = g_array_new (FALSE, FALSE, sizeof (HolidayRange));
  for (guint i = 0; i < items->len; i++)
    {
      const char *item = g_ptr_array_index (items, i);
      const char *dots = strstr (item, "..");
      HolidayRange range;
      if (dots == NULL)
        {
          range.first_julian = range.last_julian = parse_date (item);
        }
      else
        {
          g_autofree char *first = g_strstrip (g_strndup (item, dots - item));
          g_autofree char *last = g_strstrip (g_strdup (dots + 2));
          range.first_julian = parse_date (first);
          range.last_julian = parse_date (last);
        }
      if (range.first_julian == 0 || range.last_julian == 0)
        {
          set_invalid (error, "holidays",
                       "\"%s\" is not a date such as 2026-12-25 or a range such as 2027-03-30..2027-04-02",
                       item);
          return NULL;
        }
      if (range.first_julian > range.last_julian)
        {
          set_invalid (error, "holidays", "range \"%s\" ends before it starts", item);
          return NULL;
        }
      g_array_append_val (holidays, range);
    }
  return g_steal_pointer (&holidays);
}

/* ---- construction ------------------------------------------------------ */

TmHours *
tm_hours_new (const char *name, const char *timezone, const char *days,
              const char *open, const char *holidays, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  TmHours *hours = g_new0 (TmHours, 1);
  hours->name = g_strdup (name);
  hours->zone = parse_timezone (timezone != NULL ? timezone : "UTC", &hours->timezone_id, error);
  if (hours->zone == NULL
      || !parse_days (days != NULL ? days : "mon-fri", hours->working_day, error))
    goto failed;
  hours->intervals = parse_open (open != NULL ? open : "09:00-17:00", &hours->open_text, error);
  if (hours->intervals == NULL)
    goto failed;
  if (holidays != NULL)
    hours->holidays = parse_holidays (holidays, error);
  else
    hours->holidays = g_array_new (FALSE, FALSE, sizeof (HolidayRange));
  if (hours->holidays == NULL)
    goto failed;
  return hours;

failed:
  tm_hours_free (&hours);
  return NULL;
}

void
tm_hours_free (TmHours **hours)
{
  if (hours == NULL || *hours == NULL)
    return;
  TmHours *gone = g_steal_pointer (hours);
  g_free (gone->name);
  g_free (gone->timezone_id);
  if (gone->zone != NULL)
    g_time_zone_unref (gone->zone);
  if (gone->intervals != NULL)
    g_array_unref (gone->intervals);
  g_free (gone->open_text);
  if (gone->holidays != NULL)
    g_array_unref (gone->holidays);
  g_free (gone);
}

const char *
tm_hours_name (const TmHours *hours)
{
  g_return_val_if_fail (hours != NULL, NULL);
  return hours->name;
}

const char *
tm_hours_timezone (const TmHours *hours)
{
  g_return_val_if_fail (hours != NULL, NULL);
  return hours->timezone_id;
}

const char *
tm_hours_open_text (const TmHours *hours)
{
  g_return_val_if_fail (hours != NULL, NULL);
  return hours->open_text;
}

/* ---- the calendar walk ------------------------------------------------- */

static gboolean
is_holiday (const TmHours *hours, guint32 julian)
{
  for (guint i = 0; i < hours->holidays->len; i++)
    {
      const HolidayRange *range = &g_array_index (hours->holidays, HolidayRange, i);
      if (julian >= range->first_julian && julian <= range->last_julian)
        return TRUE;
    }
  return FALSE;
}

static gboolean
is_working_date (const TmHours *hours, const GDate *date)
{
  /* GDateWeekday runs Monday = 1 .. Sunday = 7; ours Sunday = 0. */
  int day = g_date_get_weekday (date) % 7;
  return hours->working_day[day] && !is_holiday (hours, g_date_get_julian (date));
}

/* The instant of wall-clock MINUTE_OF_DAY (0..1440) on local DATE; FALSE when
 * outside the range GDateTime covers. 24:00 is the next day's midnight. */
static gboolean
local_instant (const TmHours *hours, const GDate *date, int minute_of_day, gint64 *instant)
{
  GDate day = *date;
  if (minute_of_day == MINUTES_PER_DAY)
    {
      g_date_add_days (&day, 1);
      minute_of_day = 0;
    }
  g_autoptr (GDateTime) moment = g_date_time_new (hours->zone, g_date_get_year (&day),
                                                  g_date_get_month (&day),
                                                  g_date_get_day (&day), minute_of_day / 60,
                                                  minute_of_day % 60, 0);
  if (moment == NULL)
    return FALSE;
  *instant = g_date_time_to_unix (moment);
  return TRUE;
}

/* Local date of NOW in the zone, as the day to start walking from (the day
 * before, see the file comment). FALSE when NOW is outside GDateTime's range. */
static gboolean
walk_start (const TmHours *hours, gint64 now, GDate *date)
{
  g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (now);
  if (utc == NULL)
    return FALSE;
  g_autoptr (GDateTime) local = g_date_time_to_timezone (utc, hours->zone);
  if (local == NULL)
    return FALSE;
  g_date_clear (date, 1);
  g_date_set_dmy (date, (GDateDay) g_date_time_get_day_of_month (local),
                  (GDateMonth) g_date_time_get_month (local),
                  (GDateYear) g_date_time_get_year (local));
  if (g_date_get_julian (date) > 1)
    g_date_subtract_days (date, 1);
  return TRUE;
}

/* Calls VISIT for each open interval, as instants [start, end), that ends
 * after FROM, in time order, until VISIT returns TRUE (then TRUE) or the
 * search window is over (then FALSE). */
typedef gboolean (*IntervalVisitor) (gint64 start, gint64 end, gpointer data);

static gboolean
walk_open_intervals (const TmHours *hours, gint64 from, IntervalVisitor visit, gpointer data)
{
  GDate date;
  if (!walk_start (hours, from, &date))
    return FALSE;
  /* One extra day because the walk starts the day before FROM's date. */
  for (int walked = 0; walked <= SEARCH_DAYS + 1; walked++)
    {
      /* Dates past year 9999 stay valid GDates (they go to 65535); they
       * simply have no instants, see local_instant(). */
      if (walked > 0)
        g_date_add_days (&date, 1);
      if (!is_working_date (hours, &date))
        continue;
      for (guint i = 0; i < hours->intervals->len; i++)
        {
          const OpenInterval *interval = &g_array_index (hours->intervals, OpenInterval, i);
          gint64 start, end;
          if (!local_instant (hours, &date, interval->start_minute, &start)
              || !local_instant (hours, &date, interval->end_minute, &end))
            continue;
          /* An interval lying wholly in a spring-forward gap has no length. */
          if (end <= start || end <= from)
            continue;
          if (visit (MAX (start, from), end, data))
            return TRUE;
        }
    }
  return FALSE;
}

static gboolean
take_first (gint64 start, gint64 end, gpointer data)
{
  *(gint64 *) data = start;
  return TRUE;
}

gint64
tm_hours_next_open (const TmHours *hours, gint64 now)
{
  g_return_val_if_fail (hours != NULL, 0);
  gint64 found = 0;
  if (!walk_open_intervals (hours, now, take_first, &found))
    return 0;
  return found;
}

gboolean
tm_hours_is_open (const TmHours *hours, gint64 now)
{
  g_return_val_if_fail (hours != NULL, FALSE);
  /* The first interval ending after NOW is clipped to start no earlier than
   * NOW; it starts exactly at NOW only when NOW lies inside it. */
  return tm_hours_next_open (hours, now) == now;
}

typedef struct {
  gint64 remaining;          /* open seconds still to count */
  gint64 due;
} OpenTimeCount;

static gboolean
count_open_time (gint64 start, gint64 end, gpointer data)
{
  OpenTimeCount *count = data;
  if (count->remaining <= end - start)
    {
      count->due = start + count->remaining;
      return TRUE;
    }
  count->remaining -= end - start;
  return FALSE;
}

/* SECONDS of 0 gives the next opening (START itself when open): the first
 * moment at which no open time is still owed, and a due time that lies in
 * business hours. A target that runs out exactly at closing time is due at
 * closing time, not at the next opening. */
gint64
tm_hours_add_open_time (const TmHours *hours, gint64 start, gint64 seconds)
{
  g_return_val_if_fail (hours != NULL, 0);
  g_return_val_if_fail (seconds >= 0, 0);
  OpenTimeCount count = { seconds, 0 };
  if (!walk_open_intervals (hours, start, count_open_time, &count))
    return 0;
  return count.due;
}

char *
tm_hours_format_local (const TmHours *hours, gint64 when)
{
  g_return_val_if_fail (hours != NULL, NULL);
  g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (when);
  g_autoptr (GDateTime) local = utc != NULL ? g_date_time_to_timezone (utc, hours->zone) : NULL;
  if (local == NULL)
    /* Beyond year 9999: still something a log line can show. */
    return g_strdup_printf ("@%" G_GINT64_FORMAT, when);
  return g_date_time_format (local, "%Y-%m-%d %H:%M");
}
