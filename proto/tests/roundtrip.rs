//! Every message type survives encode -> frame -> decode unchanged, every
//! variant of every enum is covered, and broken frames are typed errors.

use lifebuoy_proto::control::{Control, EndReason, Monitor, Permissions};
use lifebuoy_proto::file::{CancelReason, EntryKind, File, FileHeader};
use lifebuoy_proto::hello::{Capabilities, Hello};
use lifebuoy_proto::input::{Input, Modifiers, MouseButton, WheelUnit};
use lifebuoy_proto::rendezvous::{
    Candidate, CandidateKind, FromRendezvous, Go, PeerAddr, Presence, Refusal, StaffEntry, ToRendezvous,
};
use lifebuoy_proto::screen::{CursorShape, Screen, ScreenUpdate};
use lifebuoy_proto::stream::FILE_CHUNK_MAX;
use lifebuoy_proto::{
    decode, encode, Fingerprint, FrameDecoder, FrameError, Message, ProtoError, ProtocolVersion, Role,
};

fn fp(n: u8) -> Fingerprint {
    Fingerprint([n; 32])
}

fn hellos() -> Vec<Hello> {
    [Role::Agent, Role::Viewer, Role::Rendezvous]
        .into_iter()
        .map(|role| Hello {
            version: ProtocolVersion::CURRENT,
            role,
            software: "lifebuoy 0.1.0".into(),
            name: "Jürgen Groß".into(),
            capabilities: Capabilities(u64::MAX),
            verification: [0xa5; 32],
        })
        .collect()
}

fn controls() -> Vec<Control> {
    vec![
        Control::Reveal { nonce: [7; 32] },
        Control::ScreenLayout {
            monitors: vec![
                Monitor {
                    id: 0,
                    x: 0,
                    y: 0,
                    width: 1920,
                    height: 1080,
                    primary: true,
                    name: "HDMI-1".into(),
                },
                Monitor {
                    id: 1,
                    x: -1280,
                    y: 0,
                    width: 1280,
                    height: 1024,
                    primary: false,
                    name: String::new(),
                },
            ],
        },
        Control::SelectMonitor { id: 1 },
        Control::Permissions(Permissions { view: true, control: false, files: true, clipboard: false }),
        Control::Clipboard { text: "Zeile 1\r\n\tZeile 2 €".into() },
        Control::End { reason: EndReason::CustomerEnded },
        Control::End { reason: EndReason::TechnicianEnded },
        Control::End { reason: EndReason::Shutdown },
        Control::End { reason: EndReason::ProtocolError },
    ]
}

fn screens() -> Vec<Screen> {
    vec![
        Screen::Update(ScreenUpdate {
            seq: u64::MAX,
            monitor: 0,
            width: 3840,
            height: 2160,
            data: vec![1, 2, 3],
        }),
        Screen::CursorShape(CursorShape {
            id: 9,
            width: 2,
            height: 3,
            hot_x: 1,
            hot_y: 2,
            rgba: vec![0xff; 24],
        }),
        Screen::CursorPosition { monitor: 1, x: -5, y: 1079, visible: false },
    ]
}

fn inputs() -> Vec<Input> {
    let mut v = vec![
        Input::PointerMove { monitor: 0, x: 1919, y: 0 },
        Input::Wheel { dx: -1, dy: 3, unit: WheelUnit::Line, modifiers: Modifiers(Modifiers::CTRL) },
        Input::Wheel { dx: 0, dy: -120, unit: WheelUnit::Pixel, modifiers: Modifiers::default() },
        Input::Key {
            physical: 0x04,
            logical: Some('ä'),
            pressed: true,
            modifiers: Modifiers(Modifiers::SHIFT | Modifiers::ALT_GR),
        },
        Input::Key { physical: 0xe0, logical: None, pressed: false, modifiers: Modifiers::default() },
        Input::Text { text: "Grüße, 123 € ÄÖÜ ß".into() },
        Input::ReleaseAll,
    ];
    for button in
        [MouseButton::Left, MouseButton::Right, MouseButton::Middle, MouseButton::Back, MouseButton::Forward]
    {
        v.push(Input::Button { button, pressed: true, modifiers: Modifiers(Modifiers::SHIFT) });
    }
    v
}

fn files() -> Vec<File> {
    vec![
        File::Header(FileHeader {
            transfer: 3,
            path: "Rechnungen/2026/März.pdf".into(),
            entry: EntryKind::File,
            size: 5 << 30,
            modified: Some(1_790_000_000),
        }),
        File::Header(FileHeader {
            transfer: 3,
            path: "leer".into(),
            entry: EntryKind::Folder,
            size: 0,
            modified: None,
        }),
        File::Data(vec![0x55; FILE_CHUNK_MAX]),
        File::End { blake3: [0xee; 32] },
        File::Cancel { reason: CancelReason::User },
        File::Cancel { reason: CancelReason::ReadError },
        File::Cancel { reason: CancelReason::Refused },
    ]
}

fn candidates() -> Vec<Candidate> {
    vec![
        Candidate { addr: PeerAddr::V4([10, 0, 0, 2], 40000), kind: CandidateKind::Host },
        Candidate { addr: PeerAddr::V6([0xfe; 16], 5515), kind: CandidateKind::Observed },
    ]
}

fn to_rendezvous() -> Vec<ToRendezvous> {
    vec![
        ToRendezvous::ListStaff,
        ToRendezvous::Request { staff: fp(1), label: "Kd.-Nr. 4711".into(), candidates: candidates() },
        ToRendezvous::Cancel,
        ToRendezvous::Accept { request: 77, candidates: candidates() },
        ToRendezvous::Decline { request: 77 },
        ToRendezvous::SetBusy { busy: true },
        ToRendezvous::PathLost,
    ]
}

fn from_rendezvous() -> Vec<FromRendezvous> {
    let mut v = vec![
        FromRendezvous::Staff {
            entries: [Presence::Online, Presence::Busy, Presence::Offline]
                .into_iter()
                .enumerate()
                .map(|(i, presence)| StaffEntry {
                    name: format!("Techniker {i}"),
                    group: (i % 2 == 0).then(|| "2nd level".to_owned()),
                    fingerprint: fp(i as u8),
                    presence,
                })
                .collect(),
        },
        FromRendezvous::Incoming { request: 5, label: String::new(), agent: fp(9) },
        FromRendezvous::Withdrawn { request: 5 },
        FromRendezvous::Go(Go {
            request: 5,
            peer: fp(2),
            peer_candidates: candidates(),
            observed: PeerAddr::V4([198, 51, 100, 7], 61000),
            relay_token: [4; 16],
            relay_port: 5510,
            quic_client: true,
            punch_in_ms: 40,
        }),
        FromRendezvous::Repunch {
            peer: PeerAddr::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5], 40123),
        },
    ];
    for reason in [
        Refusal::UnknownStaff,
        Refusal::Offline,
        Refusal::Busy,
        Refusal::Declined,
        Refusal::NoAnswer,
        Refusal::RateLimited,
        Refusal::AlreadyRequested,
    ] {
        v.push(FromRendezvous::Refused { reason });
    }
    v
}

/// Frames every sample into one stream, feeds it to a decoder in awkward
/// pieces, and checks each comes back equal.
fn round_trip<M: Message + PartialEq + std::fmt::Debug>(samples: &[M]) {
    let mut wire = Vec::new();
    for m in samples {
        encode(m, &mut wire).unwrap();
    }
    let mut decoder = FrameDecoder::new(M::KIND.max_frame());
    let mut got = Vec::new();
    for piece in wire.chunks(7) {
        decoder.push(piece).unwrap();
        while let Some(payload) = decoder.next_frame().unwrap() {
            got.push(decode::<M>(payload).unwrap());
        }
    }
    decoder.finish().unwrap();
    assert_eq!(got, samples);
}

/// postcard writes an enum's variant index as its first varint. Checks the
/// samples use every index below the first one the decoder refuses, so a
/// variant added later without a sample fails this test.
fn covers_every_variant<M: Message>(samples: &[M]) {
    let mut seen = std::collections::BTreeSet::new();
    for m in samples {
        let bytes = postcard::to_allocvec(m).unwrap();
        seen.insert(bytes[0]);
    }
    let mut count = 0u8;
    while count < 127 {
        match postcard::from_bytes::<M>(&[count]) {
            Err(postcard::Error::SerdeDeCustom) => break,
            _ => count += 1,
        }
    }
    let all: std::collections::BTreeSet<u8> = (0..count).collect();
    assert_eq!(seen, all, "{:?}: samples miss variants", M::KIND);
}

#[test]
fn every_message_type_round_trips() {
    round_trip(&hellos());
    round_trip(&controls());
    round_trip(&screens());
    round_trip(&inputs());
    round_trip(&files());
    round_trip(&to_rendezvous());
    round_trip(&from_rendezvous());
}

#[test]
fn samples_cover_every_variant() {
    covers_every_variant(&controls());
    covers_every_variant(&screens());
    covers_every_variant(&inputs());
    covers_every_variant(&files());
    covers_every_variant(&to_rendezvous());
    covers_every_variant(&from_rendezvous());
}

#[test]
fn oversized_messages_are_refused_on_both_ends() {
    // The sender refuses to produce it ...
    let big = File::Data(vec![0; FILE_CHUNK_MAX + 1]);
    assert!(matches!(encode(&big, &mut Vec::new()), Err(ProtoError::Invalid { .. })));
    let clipboard = Control::Clipboard { text: "x".repeat(600 * 1024) };
    assert!(encode(&clipboard, &mut Vec::new()).is_err());
    // ... and the receiver refuses the header before reading the payload.
    let mut decoder = FrameDecoder::new(Input::KIND.max_frame());
    let header_for_5000 = [0x88, 0x27];
    assert_eq!(decoder.push(&header_for_5000), Err(FrameError::TooLarge { len: 5000, max: 4096 }));
}

#[test]
fn truncated_message_stream_is_reported() {
    let mut wire = Vec::new();
    encode(&controls()[1], &mut wire).unwrap();
    for cut in 1..wire.len() {
        let mut decoder = FrameDecoder::new(Control::KIND.max_frame());
        decoder.push(&wire[..cut]).unwrap();
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert!(matches!(decoder.finish(), Err(FrameError::Truncated { .. })), "cut at {cut}");
    }
}

#[test]
fn truncated_payload_inside_a_frame_is_malformed_not_a_panic() {
    for m in controls() {
        let bytes = postcard::to_allocvec(&m).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode::<Control>(&bytes[..cut]).is_err());
        }
    }
}

#[test]
fn stray_bytes_after_a_message_are_refused() {
    let mut bytes = postcard::to_allocvec(&Input::ReleaseAll).unwrap();
    bytes.push(0);
    assert_eq!(
        decode::<Input>(&bytes),
        Err(ProtoError::TrailingBytes { kind: lifebuoy_proto::StreamKind::Input, extra: 1 })
    );
}

#[test]
fn hostile_length_prefixes_inside_messages_do_not_allocate() {
    // A Data chunk claiming 2^32 bytes in a 6-byte frame: refused, no allocation.
    let hostile = [2u8, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(decode::<File>(&hostile).is_err());
    // A staff list claiming 2^28 entries.
    let hostile = [0u8, 0xff, 0xff, 0xff, 0x7f];
    assert!(decode::<FromRendezvous>(&hostile).is_err());
}
