//! Date operators, in UTC: `$year`, `$month`, `$dayOfMonth`, `$hour`, `$minute`, `$second`,
//! `$millisecond`, `$dayOfWeek`, `$dayOfYear`, and `$dateToString` with MongoDB's `%`
//! format specifiers. Time zones other than UTC are not built (`NEXUS_UNSUPPORTED`).
//! The calendar arithmetic is the proleptic Gregorian calendar (days from civil dates).

use super::{arg, fail, is_nullish, type_name, MISSING};
use crate::error::{Error, Result};
use bson::Bson;

const PARTS: &[&str] = &[
    "$year",
    "$month",
    "$dayOfMonth",
    "$hour",
    "$minute",
    "$second",
    "$millisecond",
    "$dayOfWeek",
    "$dayOfYear",
];

/// Whether `name` is one of the date-part operators.
pub(crate) fn is_part(name: &str) -> bool {
    PARTS.contains(&name)
}

/// The broken-down UTC time of a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// 1 (Sunday) to 7 (Saturday), MongoDB's `$dayOfWeek`.
    pub weekday: u32,
    /// 1 to 366.
    pub yday: u32,
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Year, month (1-12), day (1-31) of a count of days since 1970-01-01.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bounded calendar values
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bounded calendar values
pub(crate) fn civil(ms: i64) -> Civil {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let yday = (days - days_from_civil(year, 1, 1) + 1) as u32;
    Civil {
        year,
        month,
        day,
        hour: (rem / 3_600_000) as u32,
        minute: (rem / 60_000 % 60) as u32,
        second: (rem / 1000 % 60) as u32,
        millis: (rem % 1000) as u32,
        // 1970-01-01 was a Thursday (5 in 1 = Sunday numbering).
        weekday: ((days + 4).rem_euclid(7) + 1) as u32,
        yday,
    }
}

/// The milliseconds since the epoch of a date operand (a date, a timestamp, an ObjectId).
fn millis_of(op: &str, v: &Bson) -> Result<i64> {
    match v {
        Bson::DateTime(d) => Ok(d.timestamp_millis()),
        Bson::Timestamp(t) => Ok(i64::from(t.time) * 1000),
        Bson::ObjectId(o) => Ok(o.timestamp().timestamp_millis()),
        other => Err(fail(format!(
            "{op}: can't convert from BSON type {} to Date",
            type_name(other)
        ))),
    }
}

/// Accepts UTC spelled the usual ways; refuses other zones as not built.
pub(crate) fn check_timezone(tz: &Bson) -> Result<()> {
    match tz {
        v if is_nullish(v) => Ok(()),
        Bson::String(s)
            if [
                "UTC", "GMT", "Z", "Etc/UTC", "Etc/GMT", "+00:00", "+0000", "+00", "-00:00",
            ]
            .contains(&s.as_str()) =>
        {
            Ok(())
        }
        Bson::String(s) => Err(Error::unsupported(format!(
            "timezone '{s}': only UTC is supported by NexusLite's date operators"
        ))),
        other => Err(fail(format!(
            "timezone must be a string, found {}",
            type_name(other)
        ))),
    }
}

/// A date part of `v` (null for null or missing).
pub(crate) fn part(name: &str, v: &Bson) -> Result<Bson> {
    if is_nullish(v) {
        return Ok(Bson::Null);
    }
    let c = civil(millis_of(name, v)?);
    let n = match name {
        "$year" => return Ok(Bson::Int32(i32::try_from(c.year).unwrap_or(i32::MAX))),
        "$month" => c.month,
        "$dayOfMonth" => c.day,
        "$hour" => c.hour,
        "$minute" => c.minute,
        "$second" => c.second,
        "$millisecond" => c.millis,
        "$dayOfWeek" => c.weekday,
        _ => c.yday,
    };
    Ok(Bson::Int32(i32::try_from(n).unwrap_or(i32::MAX)))
}

/// `$dateToString`.
pub(crate) fn date_to_string(args: &[(&str, Bson)]) -> Result<Bson> {
    if let Some(tz) = arg(args, "timezone") {
        check_timezone(tz)?;
    }
    let date = arg(args, "date").unwrap_or(&MISSING);
    if is_nullish(date) {
        return Ok(match arg(args, "onNull") {
            Some(v) => v.clone(),
            None => Bson::Null,
        });
    }
    let format = match arg(args, "format") {
        None => "%Y-%m-%dT%H:%M:%S.%LZ",
        Some(v) if is_nullish(v) => return Ok(Bson::Null),
        Some(Bson::String(f)) => f.as_str(),
        Some(other) => {
            return Err(fail(format!(
                "$dateToString requires that 'format' be a string, found: {}",
                type_name(other)
            )))
        }
    };
    let ms = millis_of("$dateToString", date)?;
    Ok(Bson::String(format_date(ms, format)?))
}

/// Formats `ms` with MongoDB's `%` specifiers.
pub(crate) fn format_date(ms: i64, format: &str) -> Result<String> {
    use std::fmt::Write;
    let c = civil(ms);
    let mut out = String::new();
    let mut it = format.chars();
    while let Some(ch) = it.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let Some(spec) = it.next() else {
            return Err(fail("$dateToString: unmatched '%' at end of format string"));
        };
        // Writing to a String cannot fail.
        let _ = match spec {
            'Y' => write!(out, "{:04}", c.year),
            'm' => write!(out, "{:02}", c.month),
            'd' => write!(out, "{:02}", c.day),
            'H' => write!(out, "{:02}", c.hour),
            'M' => write!(out, "{:02}", c.minute),
            'S' => write!(out, "{:02}", c.second),
            'L' => write!(out, "{:03}", c.millis),
            'j' => write!(out, "{:03}", c.yday),
            'w' => write!(out, "{}", c.weekday),
            'u' => write!(out, "{}", if c.weekday == 1 { 7 } else { c.weekday - 1 }),
            'U' => write!(out, "{:02}", (c.yday + 6 - (c.weekday - 1)) / 7),
            'G' => write!(out, "{:04}", iso_week(&c).0),
            'V' => write!(out, "{:02}", iso_week(&c).1),
            'z' => write!(out, "+0000"),
            'Z' => write!(out, "+000"),
            '%' => write!(out, "%"),
            other => {
                return Err(fail(format!(
                    "$dateToString: invalid format character '%{other}' in format string"
                )))
            }
        };
    }
    Ok(out)
}

/// ISO 8601 week-numbering year and week of a date.
fn iso_week(c: &Civil) -> (i64, u32) {
    // ISO weekday: Monday 1 .. Sunday 7.
    let iso_wd = i64::from(if c.weekday == 1 { 7 } else { c.weekday - 1 });
    let wk = (i64::from(c.yday) - iso_wd + 10).div_euclid(7);
    let weeks_in = |y: i64| -> i64 {
        let p =
            |y: i64| (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400)).rem_euclid(7);
        if p(y) == 4 || p(y - 1) == 3 {
            53
        } else {
            52
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1..=53
    if wk < 1 {
        (c.year - 1, weeks_in(c.year - 1) as u32)
    } else if wk > weeks_in(c.year) {
        (c.year + 1, 1)
    } else {
        (c.year, wk as u32)
    }
}

/// Parses the ISO-8601 forms `$toDate` accepts: `YYYY-MM-DD`, optionally followed by
/// `THH:MM[:SS[.mmm]]` and `Z` or `±HH:MM`.
pub(crate) fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) && !t.is_empty() {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (m, d) = (u32::try_from(m).ok()?, u32::try_from(d).ok()?);
    let month_len = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_len[(m - 1) as usize] {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    let mut i = 10;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        let h = num(i + 1..i + 3)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        let mi = num(i + 4..i + 6)?;
        i += 6;
        let mut sec = 0;
        let mut frac = 0;
        if b.get(i) == Some(&b':') {
            sec = num(i + 1..i + 3)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                let digits = s.get(start..end)?;
                if digits.is_empty() {
                    return None;
                }
                let three: String = digits.chars().chain("000".chars()).take(3).collect();
                frac = three.parse().ok()?;
                i = end;
            }
        }
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        ms += h * 3_600_000 + mi * 60_000 + sec * 1000 + frac;
    }
    match &s[i..] {
        "" | "Z" => Some(ms),
        rest if (rest.starts_with('+') || rest.starts_with('-')) && rest.len() == 6 => {
            let sign = if rest.starts_with('+') { 1 } else { -1 };
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            Some(ms - sign * (oh * 3_600_000 + om * 60_000))
        }
        _ => None,
    }
}
