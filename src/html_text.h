/* html_text.h - readable plain text from an HTML body.
 *
 * For mail whose only text is HTML: drops <script>, <style> and <head>,
 * turns block elements (p, div, br, li, tr, h1-h6, blockquote) into line
 * breaks, list items into "- ", decodes character references (named, decimal
 * and hex), collapses runs of white space, and keeps link targets as
 * "text <url>" when they differ from the text. Input must be UTF-8; output
 * is UTF-8. Linear in the input; never fails on broken markup.
 */
#ifndef TM_HTML_TEXT_H
#define TM_HTML_TEXT_H

#include <glib.h>

char *tm_html_to_text (const char *html, gsize length) G_GNUC_WARN_UNUSED_RESULT;

#endif
