//! `spot-interrupt`: a Fargate Spot interruption drill, asked of the supervisor
//! (`pantstack_local::supervisor`'s spot module does it).

use super::*;
use crate::args::SpotInterruptArgs;

pub fn spot_interrupt(global: &Global, out: &Out, a: &SpotInterruptArgs) -> Result<(), Failure> {
    let (_, paths) = socket_of(global, a.env.as_deref())?;
    let rt = runtime()?;
    let v = call_short(
        &rt,
        &paths,
        Request::SpotInterrupt {
            service: a.service.clone(),
            task: a.task,
            all: a.all,
        },
    )?;
    if let Some(e) = control::Reply::of(&v).error {
        return Err(Failure::Resolve(e));
    }
    if out.json() {
        println!("{v}");
        return Ok(());
    }
    for t in v["interrupted"].as_array().into_iter().flatten() {
        println!(
            "{}: task {} (FARGATE_SPOT) got the Spot interruption notice and SIGTERM; SIGKILL in {} s if it is still running. Its replacement starts now: `pantstack status` shows it, `pantstack logs {}` what the task did.",
            t["unit"].as_str().unwrap_or("?"),
            t["task"],
            t["stop_timeout_secs"],
            t["unit"].as_str().unwrap_or("?"),
        );
    }
    Ok(())
}
