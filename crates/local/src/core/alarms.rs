//! CloudWatch metric alarms, as pure state machines fed one datapoint per period.
//!
//! The caller applies the statistic (Average, Sum, Maximum...) and hands
//! [`Alarm::evaluate`] one value per period, or `None` when the period had no
//! data. Invariants:
//!
//! - An alarm starts in `INSUFFICIENT_DATA` and evaluates the last `periods` (N)
//!   periods; `datapoints` (M, 1..=N) of them must breach for `ALARM`.
//! - Missing datapoints count as breaching (`breaching`), as good
//!   (`notBreaching`), or not at all (`missing`, `ignore`): then the present ones
//!   decide. When every one of the N is missing, `missing` goes to
//!   `INSUFFICIENT_DATA` and `ignore` keeps the state.
//! - `ALARM` as soon as M datapoints breach (even before N periods were seen);
//!   any other state only once N periods have been seen. Until then the state
//!   stays as it is.
//! - Unlike CloudWatch, which may look further back than N periods to find N
//!   present datapoints, exactly the last N periods are evaluated.
//! - Every change of state is a [`Transition`], returned and kept in the history
//!   (the latest [`HISTORY`], oldest dropped). The reason is worded like
//!   CloudWatch's StateReason; datapoints are listed newest first, as there.
//! - Non-finite values (NaN, infinities) count as missing.

use super::Millis;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt;

/// Transitions kept per alarm.
pub const HISTORY: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum State {
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InsufficientData => "INSUFFICIENT_DATA",
            State::Ok => "OK",
            State::Alarm => "ALARM",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a datapoint compares with the threshold to breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Comparison {
    #[serde(rename = "GreaterThanThreshold")]
    GreaterThan,
    #[serde(rename = "GreaterThanOrEqualToThreshold")]
    GreaterThanOrEqual,
    #[serde(rename = "LessThanThreshold")]
    LessThan,
    #[serde(rename = "LessThanOrEqualToThreshold")]
    LessThanOrEqual,
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::GreaterThanOrEqual => value >= threshold,
            Comparison::LessThan => value < threshold,
            Comparison::LessThanOrEqual => value <= threshold,
        }
    }

    /// The ComparisonOperator, as CloudWatch spells it.
    pub fn aws_name(self) -> &'static str {
        match self {
            Comparison::GreaterThan => "GreaterThanThreshold",
            Comparison::GreaterThanOrEqual => "GreaterThanOrEqualToThreshold",
            Comparison::LessThan => "LessThanThreshold",
            Comparison::LessThanOrEqual => "LessThanOrEqualToThreshold",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Comparison::GreaterThan => "greater than",
            Comparison::GreaterThanOrEqual => "greater than or equal to",
            Comparison::LessThan => "less than",
            Comparison::LessThanOrEqual => "less than or equal to",
        }
    }
}

/// TreatMissingData.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    /// Missing datapoints are good (what Pantstack synthesizes).
    NotBreaching,
    /// Missing datapoints breach.
    Breaching,
    /// Missing datapoints do not count; all missing keeps the state.
    Ignore,
    /// Missing datapoints do not count; all missing is INSUFFICIENT_DATA
    /// (CloudWatch's default).
    Missing,
}

impl MissingData {
    /// The TreatMissingData value, as CloudWatch spells it.
    pub fn aws_name(self) -> &'static str {
        match self {
            MissingData::NotBreaching => "notBreaching",
            MissingData::Breaching => "breaching",
            MissingData::Ignore => "ignore",
            MissingData::Missing => "missing",
        }
    }
}

/// An alarm's configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Spec {
    pub name: String,
    /// What the value is, for display ("HTTPCode_Target_5XX_Count (Sum)").
    pub metric: String,
    pub threshold: f64,
    pub comparison: Comparison,
    /// EvaluationPeriods (N); 0 reads as 1.
    pub periods: u32,
    /// DatapointsToAlarm (M); clamped to 1..=N.
    pub datapoints: u32,
    pub missing: MissingData,
}

impl Spec {
    /// An alarm as Pantstack synthesizes them: greater than the threshold for N of
    /// N periods, missing data not breaching.
    pub fn new(
        name: impl Into<String>,
        metric: impl Into<String>,
        threshold: f64,
        periods: u32,
    ) -> Self {
        Spec {
            name: name.into(),
            metric: metric.into(),
            threshold,
            comparison: Comparison::GreaterThan,
            periods,
            datapoints: periods,
            missing: MissingData::NotBreaching,
        }
    }

    fn n(&self) -> usize {
        self.periods.max(1) as usize
    }

    fn m(&self) -> usize {
        (self.datapoints as usize).clamp(1, self.n())
    }
}

/// A change of an alarm's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub alarm: String,
    pub from: State,
    pub to: State,
    pub reason: String,
    pub at: Millis,
}

/// What a display shows of an alarm.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct View<'a> {
    pub spec: &'a Spec,
    pub state: State,
    pub reason: &'a str,
    /// When the alarm entered its state (or was created).
    pub since: Millis,
    /// The latest period's datapoint (None: it had none, or nothing evaluated yet).
    pub last_value: Option<f64>,
    /// Oldest first.
    pub history: &'a VecDeque<Transition>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    spec: Spec,
    state: State,
    reason: String,
    since: Millis,
    last_value: Option<f64>,
    /// The last N periods' datapoints, oldest first.
    window: VecDeque<Option<f64>>,
    history: VecDeque<Transition>,
}

impl Alarm {
    pub fn new(spec: Spec, now: Millis) -> Self {
        Alarm {
            spec,
            state: State::InsufficientData,
            reason: "Unchecked: Initial alarm creation".to_string(),
            since: now,
            last_value: None,
            window: VecDeque::new(),
            history: VecDeque::new(),
        }
    }

    /// A new configuration (a manifest change): the state, its reason and the
    /// history stay, as when CloudWatch updates an alarm; the datapoints seen are
    /// evaluated against the new configuration at the next period.
    pub fn update(&mut self, spec: Spec) {
        self.spec = spec;
        self.trim();
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn view(&self) -> View<'_> {
        View {
            spec: &self.spec,
            state: self.state,
            reason: &self.reason,
            since: self.since,
            last_value: self.last_value,
            history: &self.history,
        }
    }

    /// The datapoint of the period ending at `now`. Returns the transition if the
    /// state changed.
    pub fn evaluate(&mut self, now: Millis, value: Option<f64>) -> Option<Transition> {
        let value = value.filter(|v| v.is_finite());
        self.last_value = value;
        self.window.push_back(value);
        self.trim();
        let (to, reason) = self.next()?;
        if to == self.state {
            return None;
        }
        let t = Transition {
            alarm: self.spec.name.clone(),
            from: self.state,
            to,
            reason: reason.clone(),
            at: now,
        };
        self.state = to;
        self.reason = reason;
        self.since = now;
        self.history.push_back(t.clone());
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        Some(t)
    }

    fn trim(&mut self) {
        while self.window.len() > self.spec.n() {
            self.window.pop_front();
        }
    }

    /// The state the window calls for, with its reason; None: keep the state.
    fn next(&self) -> Option<(State, String)> {
        let s = &self.spec;
        let (n, m) = (s.n(), s.m());
        let seen = self.window.len();
        // Newest first, as CloudWatch lists them.
        let present = self.window.iter().rev().flatten().copied();
        let breaching: Vec<f64> = present
            .clone()
            .filter(|v| s.comparison.breaches(*v, s.threshold))
            .collect();
        let good: Vec<f64> = present
            .filter(|v| !s.comparison.breaches(*v, s.threshold))
            .collect();
        let missing = seen - breaching.len() - good.len();
        let treated_bad = if s.missing == MissingData::Breaching {
            missing
        } else {
            0
        };
        let thr = datapoint(s.threshold);
        let words = s.comparison.words();
        if breaching.len() + treated_bad >= m {
            let reason = if breaching.is_empty() {
                format!(
                    "Threshold Crossed: no datapoints were received for {missing} {} and \
                     {missing} missing {} treated as [Breaching].",
                    plural(missing, "period", "periods"),
                    plural(missing, "datapoint was", "datapoints were"),
                )
            } else {
                let mut r = format!(
                    "Threshold Crossed: {} out of the last {seen} datapoints [{}] {} {words} \
                     the threshold ({thr}).",
                    breaching.len(),
                    list(&breaching),
                    plural(breaching.len(), "was", "were"),
                );
                if treated_bad > 0 {
                    r.push_str(&format!(
                        " {treated_bad} missing {} treated as [Breaching].",
                        plural(treated_bad, "datapoint was", "datapoints were")
                    ));
                }
                r
            };
            return Some((State::Alarm, reason));
        }
        if seen < n {
            return None;
        }
        if missing == n {
            return match s.missing {
                MissingData::Missing => Some((
                    State::InsufficientData,
                    format!(
                        "Insufficient Data: {n} {} unknown.",
                        plural(n, "datapoint was", "datapoints were")
                    ),
                )),
                MissingData::NotBreaching => Some((
                    State::Ok,
                    format!(
                        "Threshold Crossed: no datapoints were received for {n} {} and {n} \
                         missing {} treated as [NonBreaching].",
                        plural(n, "period", "periods"),
                        plural(n, "datapoint was", "datapoints were"),
                    ),
                )),
                // Breaching alarmed above.
                MissingData::Ignore | MissingData::Breaching => None,
            };
        }
        let mut reason = if good.is_empty() {
            format!(
                "Threshold Crossed: only {} out of the last {seen} datapoints [{}] {} {words} \
                 the threshold ({thr}), fewer than {m}.",
                breaching.len(),
                list(&breaching),
                plural(breaching.len(), "was", "were"),
            )
        } else {
            format!(
                "Threshold Crossed: {} out of the last {seen} datapoints [{}] {} not {words} \
                 the threshold ({thr}).",
                good.len(),
                list(&good),
                plural(good.len(), "was", "were"),
            )
        };
        if missing > 0 {
            let how = if s.missing == MissingData::NotBreaching {
                "treated as [NonBreaching]"
            } else {
                "missing"
            };
            reason.push_str(&format!(
                " {missing} {} {how}.",
                plural(missing, "datapoint was", "datapoints were")
            ));
        }
        Some((State::Ok, reason))
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn list(values: &[f64]) -> String {
    let v: Vec<String> = values.iter().map(|v| datapoint(*v)).collect();
    v.join(", ")
}

/// A datapoint as reasons and causes print it: one decimal ("12.0", "93.1"); below
/// 1, up to three ("0.052").
pub(crate) fn datapoint(v: f64) -> String {
    if v == 0.0 || v.abs() >= 1.0 {
        return format!("{v:.1}");
    }
    let mut s = format!("{v:.3}");
    while s.ends_with('0') && !s.ends_with(".0") {
        s.pop();
    }
    s
}

/// A target or threshold without needless decimals ("70", "63", "62.5").
pub(crate) fn plain(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Millis = 60_000;

    fn spec(n: u32, m: u32, missing: MissingData) -> Spec {
        Spec {
            datapoints: m,
            missing,
            ..Spec::new("api-5xx", "HTTPCode_Target_5XX_Count (Sum)", 10.0, n)
        }
    }

    /// Feeds one datapoint per period from `P`; returns each period's transition.
    fn feed(a: &mut Alarm, start: Millis, values: &[Option<f64>]) -> Vec<Option<Transition>> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| a.evaluate(start + (i as Millis + 1) * P, *v))
            .collect()
    }

    fn states(ts: &[Option<Transition>]) -> Vec<Option<State>> {
        ts.iter().map(|t| t.as_ref().map(|t| t.to)).collect()
    }

    #[test]
    fn starts_with_insufficient_data() {
        let a = Alarm::new(spec(3, 3, MissingData::NotBreaching), 5);
        let v = a.view();
        assert_eq!(v.state, State::InsufficientData);
        assert_eq!(v.reason, "Unchecked: Initial alarm creation");
        assert_eq!((v.since, v.last_value, v.history.len()), (5, None, 0));
    }

    #[test]
    fn three_of_three_breaching_datapoints_alarm() {
        let mut a = Alarm::new(spec(3, 3, MissingData::NotBreaching), 0);
        let ts = feed(&mut a, 0, &[Some(11.0), Some(15.0), Some(12.0)]);
        assert_eq!(
            states(&ts),
            [None, None, Some(State::Alarm)],
            "not after two"
        );
        let t = ts[2].clone();
        assert_eq!(
            t,
            Some(Transition {
                alarm: "api-5xx".into(),
                from: State::InsufficientData,
                to: State::Alarm,
                reason: "Threshold Crossed: 3 out of the last 3 datapoints [12.0, 15.0, 11.0] \
                         were greater than the threshold (10.0)."
                    .into(),
                at: 3 * P,
            })
        );
        let v = a.view();
        assert_eq!(
            (v.state, v.since, v.last_value),
            (State::Alarm, 3 * P, Some(12.0))
        );
        assert_eq!(v.reason, t.map(|t| t.reason).unwrap_or_default());
        assert_eq!(
            feed(&mut a, 3 * P, &[Some(20.0)]),
            [None],
            "no change, no transition"
        );
        assert_eq!(a.view().history.len(), 1);
        assert_eq!(a.view().last_value, Some(20.0));
    }

    #[test]
    fn goes_ok_only_once_n_periods_were_seen() {
        let mut a = Alarm::new(spec(3, 3, MissingData::NotBreaching), 0);
        let ts = feed(&mut a, 0, &[Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(states(&ts), [None, None, Some(State::Ok)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 3 out of the last 3 datapoints [3.0, 2.0, 1.0] were not \
             greater than the threshold (10.0)."
        );
        let ts = feed(
            &mut a,
            3 * P,
            &[Some(11.0), Some(12.0), Some(5.0), Some(13.0)],
        );
        assert_eq!(states(&ts), [None, None, None, None], "never 3 in a row");
    }

    #[test]
    fn m_of_n() {
        let mut a = Alarm::new(spec(3, 2, MissingData::NotBreaching), 0);
        let ts = feed(&mut a, 0, &[Some(12.0), Some(5.0), Some(15.0)]);
        assert_eq!(states(&ts), [None, None, Some(State::Alarm)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 2 out of the last 3 datapoints [15.0, 12.0] were greater \
             than the threshold (10.0)."
        );
        // [5, 15, 5]: one of three.
        let ts = feed(&mut a, 3 * P, &[Some(5.0)]);
        assert_eq!(states(&ts), [Some(State::Ok)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 2 out of the last 3 datapoints [5.0, 5.0] were not greater \
             than the threshold (10.0)."
        );
    }

    #[test]
    fn m_breaching_datapoints_alarm_before_n_periods() {
        let mut a = Alarm::new(spec(5, 1, MissingData::NotBreaching), 0);
        let ts = feed(&mut a, 0, &[Some(10.5)]);
        assert_eq!(states(&ts), [Some(State::Alarm)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 1 out of the last 1 datapoints [10.5] was greater than the \
             threshold (10.0)."
        );
    }

    #[test]
    fn comparisons_at_the_threshold() {
        use Comparison::*;
        let at = [
            (GreaterThan, false),
            (GreaterThanOrEqual, true),
            (LessThan, false),
            (LessThanOrEqual, true),
        ];
        for (c, breach) in at {
            assert_eq!(c.breaches(10.0, 10.0), breach, "{c:?}");
        }
        assert!(GreaterThan.breaches(10.1, 10.0) && !GreaterThan.breaches(9.9, 10.0));
        assert!(LessThan.breaches(9.9, 10.0) && !LessThan.breaches(10.1, 10.0));
        let mut a = Alarm::new(
            Spec {
                comparison: LessThanOrEqual,
                ..spec(1, 1, MissingData::Missing)
            },
            0,
        );
        feed(&mut a, 0, &[Some(10.0)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 1 out of the last 1 datapoints [10.0] was less than or equal \
             to the threshold (10.0)."
        );
        feed(&mut a, P, &[Some(11.0)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 1 out of the last 1 datapoints [11.0] was not less than or \
             equal to the threshold (10.0)."
        );
    }

    #[test]
    fn all_missing_with_not_breaching_is_ok() {
        let mut a = Alarm::new(spec(3, 3, MissingData::NotBreaching), 0);
        let ts = feed(&mut a, 0, &[None, None, None]);
        assert_eq!(states(&ts), [None, None, Some(State::Ok)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: no datapoints were received for 3 periods and 3 missing \
             datapoints were treated as [NonBreaching]."
        );
    }

    #[test]
    fn missing_counts_as_good_with_not_breaching() {
        let mut a = Alarm::new(spec(3, 3, MissingData::NotBreaching), 0);
        feed(&mut a, 0, &[Some(12.0), Some(12.0), Some(12.0)]);
        let ts = feed(&mut a, 3 * P, &[None]);
        assert_eq!(states(&ts), [Some(State::Ok)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: only 2 out of the last 3 datapoints [12.0, 12.0] were \
             greater than the threshold (10.0), fewer than 3. 1 datapoint was treated as \
             [NonBreaching]."
        );
    }

    #[test]
    fn missing_counts_as_bad_with_breaching() {
        let mut a = Alarm::new(spec(3, 3, MissingData::Breaching), 0);
        let ts = feed(&mut a, 0, &[Some(12.0), None, Some(12.0)]);
        assert_eq!(states(&ts), [None, None, Some(State::Alarm)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 2 out of the last 3 datapoints [12.0, 12.0] were greater \
             than the threshold (10.0). 1 missing datapoint was treated as [Breaching]."
        );
        let mut a = Alarm::new(spec(3, 2, MissingData::Breaching), 0);
        let ts = feed(&mut a, 0, &[None, None]);
        assert_eq!(
            states(&ts),
            [None, Some(State::Alarm)],
            "M missing datapoints"
        );
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: no datapoints were received for 2 periods and 2 missing \
             datapoints were treated as [Breaching]."
        );
    }

    #[test]
    fn all_missing_with_missing_is_insufficient_data() {
        let mut a = Alarm::new(spec(3, 3, MissingData::Missing), 0);
        let ts = feed(
            &mut a,
            0,
            &[Some(12.0), Some(12.0), Some(12.0), None, None, None],
        );
        assert_eq!(
            states(&ts),
            [
                None,
                None,
                Some(State::Alarm),
                Some(State::Ok),
                None,
                Some(State::InsufficientData)
            ]
        );
        let h = &a.view().history;
        assert_eq!(
            h[1].reason,
            "Threshold Crossed: only 2 out of the last 3 datapoints [12.0, 12.0] were \
             greater than the threshold (10.0), fewer than 3. 1 datapoint was missing."
        );
        assert_eq!(
            a.view().reason,
            "Insufficient Data: 3 datapoints were unknown."
        );
        // Fewer than N periods, all missing: stays as it started.
        let mut a = Alarm::new(spec(3, 3, MissingData::Missing), 0);
        assert_eq!(states(&feed(&mut a, 0, &[None, None])), [None, None]);
    }

    #[test]
    fn all_missing_with_ignore_keeps_the_state() {
        let mut a = Alarm::new(spec(2, 2, MissingData::Ignore), 0);
        let ts = feed(&mut a, 0, &[Some(12.0), Some(12.0), None, None, None, None]);
        assert_eq!(
            states(&ts),
            [None, Some(State::Alarm), Some(State::Ok), None, None, None]
        );
        assert_eq!(a.state(), State::Ok);
        let mut a = Alarm::new(spec(2, 1, MissingData::Ignore), 0);
        let ts = feed(&mut a, 0, &[Some(12.0), None, None, None]);
        assert_eq!(
            states(&ts),
            [Some(State::Alarm), None, None, None],
            "ALARM is kept"
        );
        let mut a = Alarm::new(spec(2, 2, MissingData::Ignore), 0);
        assert_eq!(
            states(&feed(&mut a, 0, &[None, None, None])),
            [None, None, None]
        );
        assert_eq!(a.state(), State::InsufficientData);
    }

    #[test]
    fn non_finite_values_are_missing() {
        let mut a = Alarm::new(spec(1, 1, MissingData::Missing), 0);
        feed(&mut a, 0, &[Some(1.0)]);
        let ts = feed(&mut a, P, &[Some(f64::NAN)]);
        assert_eq!(states(&ts), [Some(State::InsufficientData)]);
        assert_eq!(a.view().last_value, None);
        let ts = feed(&mut a, 2 * P, &[Some(f64::INFINITY)]);
        assert_eq!(states(&ts), [None]);
    }

    #[test]
    fn the_history_keeps_the_latest_transitions() {
        let mut a = Alarm::new(spec(1, 1, MissingData::NotBreaching), 0);
        let values: Vec<Option<f64>> = (0..250)
            .map(|i| Some(if i % 2 == 0 { 20.0 } else { 1.0 }))
            .collect();
        let ts = feed(&mut a, 0, &values);
        assert!(
            ts.iter().all(Option::is_some),
            "every period flips the state"
        );
        let h = &a.view().history;
        assert_eq!(h.len(), HISTORY);
        assert_eq!(
            h.front().map(|t| t.at),
            Some(151 * P),
            "the oldest were dropped"
        );
        assert_eq!(h.back(), ts[249].as_ref());
        assert_eq!((h[0].from, h[0].to), (State::Ok, State::Alarm));
        assert_eq!(
            ts[0].as_ref().map(|t| t.from),
            Some(State::InsufficientData)
        );
    }

    #[test]
    fn update_keeps_the_state_and_evaluates_the_new_configuration() {
        let mut a = Alarm::new(spec(3, 3, MissingData::NotBreaching), 0);
        feed(&mut a, 0, &[Some(12.0), Some(12.0), Some(12.0)]);
        a.update(Spec {
            threshold: 50.0,
            ..spec(2, 2, MissingData::NotBreaching)
        });
        assert_eq!((a.state(), a.view().history.len()), (State::Alarm, 1));
        let ts = feed(&mut a, 3 * P, &[Some(12.0)]);
        assert_eq!(states(&ts), [Some(State::Ok)]);
        assert_eq!(
            a.view().reason,
            "Threshold Crossed: 2 out of the last 2 datapoints [12.0, 12.0] were not \
             greater than the threshold (50.0)."
        );
        assert_eq!(a.spec().periods, 2);
    }

    #[test]
    fn invalid_m_and_n_are_clamped() {
        let mut a = Alarm::new(spec(0, 9, MissingData::NotBreaching), 0);
        assert_eq!(
            states(&feed(&mut a, 0, &[Some(11.0)])),
            [Some(State::Alarm)]
        );
        let mut a = Alarm::new(spec(2, 0, MissingData::NotBreaching), 0);
        assert_eq!(
            states(&feed(&mut a, 0, &[Some(11.0)])),
            [Some(State::Alarm)]
        );
    }

    #[test]
    fn the_view_serializes_with_cloudwatch_names() {
        let mut a = Alarm::new(spec(1, 1, MissingData::NotBreaching), 0);
        feed(&mut a, 0, &[Some(11.0)]);
        let v = serde_json::to_value(a.view()).unwrap();
        assert_eq!(v["state"], "ALARM");
        assert_eq!(v["spec"]["comparison"], "GreaterThanThreshold");
        assert_eq!(v["spec"]["missing"], "notBreaching");
        assert_eq!(v["history"][0]["from"], "INSUFFICIENT_DATA");
        assert_eq!(v["last_value"], 11.0);
        assert_eq!(State::InsufficientData.to_string(), "INSUFFICIENT_DATA");
        assert_eq!(MissingData::Ignore.aws_name(), "ignore");
        assert_eq!(Comparison::LessThan.aws_name(), "LessThanThreshold");
    }

    #[test]
    fn numbers_read_like_cloudwatch() {
        assert_eq!(datapoint(12.0), "12.0");
        assert_eq!(datapoint(93.10344), "93.1");
        assert_eq!(datapoint(0.0), "0.0");
        assert_eq!(datapoint(0.0523), "0.052");
        assert_eq!(datapoint(0.5), "0.5");
        assert_eq!(datapoint(0.00001), "0.0");
        assert_eq!(plain(70.0), "70");
        assert_eq!(plain(70.0 * 0.9), "63");
        assert_eq!(plain(62.5), "62.5");
        assert_eq!(plain(0.0), "0");
        assert_eq!(plain(100.0), "100");
    }
}
