//! The clock service: seconds since the Unix epoch, as a protected procedure call, and the
//! calendar to read them by.
//!
//! The call: label [`TIME`], no registers. The reply: label 0 with register 0 = seconds since
//! 1970-01-01T00:00:00Z, or label [`NOT_READY`] while no clock is bound. [`serve`] is the
//! driver's half (the PL031 driver), [`Client`] the client's.

use core::fmt;

use warden_microkit::{get_mr, set_mr, Channel, MessageInfo};

use crate::{ReplyError, NOT_READY};

/// Call label: the time.
pub const TIME: u64 = 2;

/// The client's half: the clock driver on `channel` (this end calls; the driver has the higher
/// priority, as calls require).
#[derive(Clone, Copy, Debug)]
pub struct Client(pub Channel);

impl Client {
    /// Seconds since the Unix epoch.
    ///
    /// # Errors
    /// [`ReplyError`].
    pub fn now(&self) -> Result<u64, ReplyError> {
        let reply = self.0.pp_call(MessageInfo::new(TIME, 0));
        decode_reply(reply.label(), usize::from(reply.count()), get_mr)
    }
}

/// Decodes the reply to a [`TIME`] call: its label and the registers it names (`count` of
/// them, read through `register`).
///
/// # Errors
/// [`ReplyError`].
pub fn decode_reply(
    label: u64,
    count: usize,
    register: impl Fn(usize) -> u64,
) -> Result<u64, ReplyError> {
    match (label, count) {
        (0, 1) => Ok(register(0)),
        (0, 0) => Err(ReplyError::Refused),
        (NOT_READY, _) => Err(ReplyError::NotReady),
        _ => Err(ReplyError::Malformed),
    }
}

/// The driver's half: answers a call with `seconds` (`None` while no clock is bound). A call
/// that is not [`TIME`] is answered [`NOT_READY`].
#[must_use]
pub fn serve(call: MessageInfo, seconds: Option<u64>) -> MessageInfo {
    match seconds {
        Some(seconds) if call.label() == TIME => {
            set_mr(0, seconds);
            MessageInfo::new(0, 1)
        }
        _ => MessageInfo::new(NOT_READY, 0),
    }
}

/// A date and time of day in the proleptic Gregorian calendar, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// The year (1970 or later).
    pub year: u64,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59 (Unix time has no leap seconds).
    pub second: u8,
}

const SECONDS_PER_DAY: u64 = 86_400;
/// Days from 0000-03-01, where Hinnant's eras start, to 1970-01-01.
const EPOCH_DAYS_FROM_ERA_START: u64 = 719_468;
const DAYS_PER_ERA: u64 = 146_097;

/// The date and time `seconds` after 1970-01-01T00:00:00Z.
///
/// Howard Hinnant's `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms"): years
/// are counted from March so the leap day falls at the end, and 400-year eras repeat exactly.
/// Only non-negative day counts occur here, so the arithmetic is unsigned and cannot overflow
/// for any `u64`.
#[must_use]
pub const fn civil_time(seconds: u64) -> DateTime {
    let days = seconds / SECONDS_PER_DAY;
    let second_of_day = seconds % SECONDS_PER_DAY;

    let days_from_era_start = days + EPOCH_DAYS_FROM_ERA_START;
    let era = days_from_era_start / DAYS_PER_ERA;
    // Ranges: day_of_era 0..=146096, year_of_era 0..=399, day_of_year 0..=365 counted from
    // March 1, month_from_march 0..=11 (March is 0).
    let day_of_era = days_from_era_start - era * DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };

    DateTime {
        year,
        month: month as u8,
        day: day as u8,
        hour: (second_of_day / 3600) as u8,
        minute: (second_of_day / 60 % 60) as u8,
        second: (second_of_day % 60) as u8,
    }
}

impl DateTime {
    /// Seconds since 1970-01-01T00:00:00Z (Hinnant's `days_from_civil`), or `None` if a field
    /// is out of range, the date does not exist or lies before the epoch, or the count
    /// overflows.
    #[must_use]
    pub fn unix_seconds(&self) -> Option<u64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        let month = u64::from(self.month);
        let year = if month <= 2 {
            self.year.checked_sub(1)?
        } else {
            self.year
        };
        let era = year / 400;
        let year_of_era = year - era * 400;
        let month_from_march = if month > 2 { month - 3 } else { month + 9 };
        let day_of_year = (153 * month_from_march + 2) / 5 + u64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era
            .checked_mul(DAYS_PER_ERA)?
            .checked_add(day_of_era)?
            .checked_sub(EPOCH_DAYS_FROM_ERA_START)?;
        let second_of_day =
            u64::from(self.hour) * 3600 + u64::from(self.minute) * 60 + u64::from(self.second);
        days.checked_mul(SECONDS_PER_DAY)?
            .checked_add(second_of_day)
    }
}

const fn is_leap_year(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

const fn days_in_month(year: u64, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// ISO 8601, `YYYY-MM-DDTHH:MM:SSZ` (years past 9999 take more digits).
impl fmt::Display for DateTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn replies_are_checked() {
        assert_eq!(decode_reply(0, 1, |_| 1_795_597_369), Ok(1_795_597_369));
        assert_eq!(decode_reply(NOT_READY, 0, |_| 0), Err(ReplyError::NotReady));
        assert_eq!(decode_reply(0, 2, |_| 0), Err(ReplyError::Malformed));
        assert_eq!(decode_reply(0, 0, |_| 0), Err(ReplyError::Refused));
    }

    #[test]
    fn the_server_answers_only_the_time_call() {
        assert_eq!(
            serve(MessageInfo::new(TIME, 0), Some(7)),
            MessageInfo::new(0, 1)
        );
        assert_eq!(serve(MessageInfo::new(TIME, 0), None).label(), NOT_READY);
        assert_eq!(serve(MessageInfo::new(99, 3), Some(7)).label(), NOT_READY);
    }

    fn date(year: u64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn civil_time_of_the_epoch() {
        assert_eq!(civil_time(0), date(1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_time(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(civil_time(86_399), date(1970, 1, 1, 23, 59, 59));
    }

    #[test]
    fn civil_time_of_leap_days() {
        assert_eq!(civil_time(951_782_400), date(2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_time(951_868_799), date(2000, 2, 29, 23, 59, 59));
        assert_eq!(civil_time(1_709_164_800), date(2024, 2, 29, 0, 0, 0));
    }

    #[test]
    fn civil_time_skips_the_leap_day_of_2100() {
        // 2100 is divisible by 100 and not by 400: February has 28 days.
        assert_eq!(civil_time(4_107_456_000), date(2100, 2, 28, 0, 0, 0));
        assert_eq!(civil_time(4_107_542_400), date(2100, 3, 1, 0, 0, 0));
    }

    #[test]
    fn civil_time_of_the_largest_counter_value() {
        assert_eq!(civil_time(u64::from(u32::MAX)), date(2106, 2, 7, 6, 28, 15));
        assert_eq!(
            civil_time(u64::from(u32::MAX)).to_string(),
            "2106-02-07T06:28:15Z"
        );
    }

    #[test]
    fn civil_time_does_not_overflow_at_u64_max() {
        let last = civil_time(u64::MAX);
        assert_eq!(last.unix_seconds(), Some(u64::MAX));
        assert!(last.year > 500_000_000_000);
    }

    #[test]
    fn display_is_iso_8601_with_padding() {
        assert_eq!(
            date(2009, 2, 13, 23, 31, 30).to_string(),
            "2009-02-13T23:31:30Z"
        );
        assert_eq!(
            date(12345, 1, 2, 3, 4, 5).to_string(),
            "12345-01-02T03:04:05Z"
        );
    }

    #[test]
    fn unix_seconds_inverts_civil_time() {
        let samples = [
            0,
            1,
            59,
            86_399,
            86_400,
            951_782_400,
            1_234_567_890,
            1_709_164_800,
            4_107_456_000,
            4_107_542_400,
            u64::from(u32::MAX),
            253_402_300_799,
        ];
        for seconds in samples {
            assert_eq!(
                civil_time(seconds).unix_seconds(),
                Some(seconds),
                "{seconds}"
            );
        }
        // Every day boundary across four centuries, including 2000 (leap) and 2100 (not).
        for day in (0..200_000u64).step_by(7) {
            let seconds = day * SECONDS_PER_DAY + day % SECONDS_PER_DAY;
            assert_eq!(civil_time(seconds).unix_seconds(), Some(seconds));
        }
    }

    #[test]
    fn unix_seconds_refuses_impossible_or_pre_epoch_dates() {
        assert_eq!(date(2100, 2, 29, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2023, 2, 29, 0, 0, 0).unix_seconds(), None);
        assert_eq!(
            date(2024, 2, 29, 0, 0, 0).unix_seconds(),
            Some(1_709_164_800)
        );
        assert_eq!(date(2024, 4, 31, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 13, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 0, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 0, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 1, 24, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 1, 0, 60, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 1, 0, 0, 60).unix_seconds(), None);
        assert_eq!(date(1969, 12, 31, 23, 59, 59).unix_seconds(), None);
        assert_eq!(date(0, 1, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(u64::MAX, 12, 31, 0, 0, 0).unix_seconds(), None);
    }
}
