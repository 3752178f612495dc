//! What input messages do to the customer's desktop, planned: any
//! sequence of inputs on any monitors gives actions inside a monitor, at
//! most ten wheel notches an event, and releasing leaves nothing held,
//! however far each input got before control went off.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifebuoy::input::plan::{Action, Held, NOTCHES_MAX};
use lifebuoy::screen::MonitorInfo;
use lifebuoy_proto::input::Input;

#[derive(arbitrary::Arbitrary, Debug)]
struct Case {
    monitors: Vec<(u8, i32, i32, u16, u16)>,
    inputs: Vec<(Input, u8)>,
}

fuzz_target!(|case: Case| {
    let monitors: Vec<MonitorInfo> = case
        .monitors
        .iter()
        .take(4)
        .map(|&(id, x, y, w, h)| MonitorInfo {
            id,
            name: String::new(),
            x,
            y,
            width: u32::from(w),
            height: u32::from(h),
            primary: false,
        })
        .collect();
    let code = |usage: u16| (usage % 7 != 0).then_some(usage);
    let mut held = Held::default();
    for (input, done) in case.inputs {
        let Ok(plan) = held.plan(&input, &monitors, &code) else { continue };
        let scrolls = plan.iter().filter(|a| matches!(a, Action::Scroll { .. })).count();
        assert!(scrolls <= 2 * NOTCHES_MAX as usize);
        for action in &plan {
            if let Action::Move { x, y } = *action {
                assert!(
                    monitors.iter().any(|m| {
                        let inside = |at: i32, from: i32, size: u32| {
                            i64::from(at) >= i64::from(from)
                                && i64::from(at) < i64::from(from) + i64::from(size.max(1))
                        };
                        inside(x, m.x, m.width) && inside(y, m.y, m.height)
                    }),
                    "{action:?} outside every monitor"
                );
            }
        }
        // Control may go off after any action.
        for action in plan.iter().take(usize::from(done)) {
            held.did(action);
        }
    }
    for action in held.release() {
        held.did(&action);
    }
    assert!(held.is_empty());
});
