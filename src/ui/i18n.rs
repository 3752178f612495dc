//! Every word the windows show, in German and English. One struct with a
//! field per text: a text missing in one language does not compile.
//! Placeholders (`{name}`, `{label}`, ...) are filled by [`fill`].

use std::str::FromStr;

/// The language of the windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Deutsch.
    De,
    /// English.
    En,
}

impl Lang {
    /// The system's language: German for any German locale, else English.
    pub fn from_system() -> Lang {
        // POSIX says LC_ALL overrides LC_MESSAGES overrides LANG.
        let posix = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
        let locale = posix.or_else(sys_locale::get_locale).unwrap_or_default();
        Lang::from_locale(&locale)
    }

    /// The language of a locale name such as `de_AT.UTF-8` or `en-US`.
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("de") {
            Lang::De
        } else {
            Lang::En
        }
    }

    /// Its code for `--lang`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The texts.
    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::De => &DE,
            Lang::En => &EN,
        }
    }
}

impl FromStr for Lang {
    type Err = ();
    fn from_str(s: &str) -> Result<Lang, ()> {
        match s.to_ascii_lowercase().as_str() {
            "de" | "deutsch" | "german" => Ok(Lang::De),
            "en" | "english" | "englisch" => Ok(Lang::En),
            _ => Err(()),
        }
    }
}

/// Replaces `{key}` in `text` with `value` for each pair.
pub fn fill(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (key, value) in pairs {
        out = out.replace(&format!("{{{key}}}"), value);
    }
    out
}

/// The texts of one language.
#[allow(missing_docs)]
pub struct Texts {
    // The customer's window.
    pub agent_title: &'static str,
    pub signing_in: &'static str,
    pub trying_tcp: &'static str,
    pub staff: &'static str,
    pub call_first: &'static str,
    pub label_hint: &'static str,
    pub online: &'static str,
    pub busy: &'static str,
    pub offline: &'static str,
    pub is_offline: &'static str,
    pub is_busy: &'static str,
    pub nobody: &'static str,
    pub waiting: &'static str,
    pub cancel: &'static str,
    pub connecting_to_technician: &'static str,
    pub ask_headline: &'static str,
    pub ask_compare: &'static str,
    pub ask_may: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    pub read_code: &'static str,
    pub connected_to: &'static str,
    pub may: &'static str,
    pub may_see: &'static str,
    pub allow_control: &'static str,
    pub allow_files: &'static str,
    pub allow_clipboard: &'static str,
    pub files: &'static str,
    pub drop_here: &'static str,
    pub end_session: &'static str,
    pub close: &'static str,
    pub details: &'static str,
    pub tray_tip: &'static str,
    pub tray_close: &'static str,
    // Refusals.
    pub refused_unknown: &'static str,
    pub refused_offline: &'static str,
    pub refused_busy: &'static str,
    pub refused_declined: &'static str,
    pub refused_no_answer: &'static str,
    pub refused_rate: &'static str,
    pub refused_already: &'static str,
    pub request_lost: &'static str,
    // Failures.
    pub fail_unreachable: &'static str,
    pub fail_refused: &'static str,
    pub fail_busy: &'static str,
    pub fail_server_gone: &'static str,
    pub fail_peer: &'static str,
    pub fail_local: &'static str,
    // Endings.
    pub ended_here: &'static str,
    pub ended_by_technician: &'static str,
    pub ended_by_customer: &'static str,
    pub ended_lost: &'static str,
    pub ended_you_declined: &'static str,
    pub ended_customer_declined: &'static str,
    // The technician's window.
    pub viewer_title: &'static str,
    pub signed_in_as: &'static str,
    pub waiting_for_requests: &'static str,
    pub server_lost: &'static str,
    pub reconnecting: &'static str,
    pub path_interrupted: &'static str,
    pub asks_for_help: &'static str,
    pub no_label: &'static str,
    pub accept: &'static str,
    pub decline: &'static str,
    pub connecting_to_customer: &'static str,
    pub compare_code: &'static str,
    pub waiting_for_consent: &'static str,
    pub read_code_to_customer: &'static str,
    pub connect_failed: &'static str,
    pub fit: &'static str,
    pub one_to_one: &'static str,
    pub monitor: &'static str,
    pub ctrl_alt_del: &'static str,
    pub alt_tab: &'static str,
    pub super_key: &'static str,
    pub alt_f4: &'static str,
    pub send_file: &'static str,
    pub send: &'static str,
    pub path_hint: &'static str,
    pub view_only: &'static str,
    pub no_files: &'static str,
    pub first_picture: &'static str,
    pub transfers: &'static str,
    pub sent: &'static str,
    pub received: &'static str,
    pub done: &'static str,
    pub failed: &'static str,
    pub left: &'static str,
    pub skipped: &'static str,
    pub drop_refused: &'static str,
    pub clipboard_copied: &'static str,
}

/// Deutsch.
pub static DE: Texts = Texts {
    agent_title: "{company} – Fernwartung",
    signing_in: "Verbindung zu {company} wird hergestellt …",
    trying_tcp: "Keine Antwort über UDP-Port 5515 (gesperrt?). Es wird über TCP versucht …",
    staff: "Support-Mitarbeiter",
    call_first: "Bitte rufen Sie uns zuerst an. Doppelklicken Sie dann auf die Person, mit der Sie sprechen.",
    label_hint: "Ihr Name oder Ihre Kundennummer (freiwillig)",
    online: "online",
    busy: "beschäftigt",
    offline: "offline",
    is_offline: "{name} ist gerade nicht online.",
    is_busy: "{name} ist gerade in einer anderen Sitzung.",
    nobody: "Niemand aus dem Support ist eingetragen.",
    waiting: "Warten, bis {name} annimmt …",
    cancel: "Abbrechen",
    connecting_to_technician: "{name} hat angenommen. Die Verbindung wird aufgebaut …",
    ask_headline: "{name} möchte auf Ihren Computer zugreifen",
    ask_compare: "Vergleichen Sie den Prüfcode mit dem, den {name} Ihnen am Telefon vorliest. Erlauben Sie den Zugriff nur, wenn beide gleich sind.",
    ask_may: "Wenn Sie erlauben, darf {name}:",
    allow: "Erlauben",
    deny: "Ablehnen",
    read_code: "Prüfcode (mit {name} am Telefon verglichen):",
    connected_to: "Verbunden mit {name}",
    may: "{name} darf:",
    may_see: "Ihren Bildschirm sehen",
    allow_control: "Maus und Tastatur steuern",
    allow_files: "Ihnen Dateien senden",
    allow_clipboard: "erhalten, was Sie kopieren (Zwischenablage)",
    files: "Dateien",
    drop_here: "Ziehen Sie Dateien in dieses Fenster, um sie zu senden.",
    end_session: "Sitzung beenden",
    close: "Schließen",
    details: "Einzelheiten",
    tray_tip: "{company}: Fernwartung läuft",
    tray_close: "Schließen (beendet die Sitzung)",
    refused_unknown: "{name} steht nicht (mehr) in der Liste der Firma.",
    refused_offline: "{name} ist gerade nicht online.",
    refused_busy: "{name} ist gerade beschäftigt. Versuchen Sie es gleich noch einmal oder wählen Sie jemand anderen.",
    refused_declined: "{name} hat die Anfrage abgelehnt.",
    refused_no_answer: "{name} hat nicht rechtzeitig geantwortet.",
    refused_rate: "Zu viele Anfragen aus diesem Netz. Bitte warten Sie eine Minute.",
    refused_already: "Es wartet schon eine Anfrage.",
    request_lost: "Die Verbindung zum Firmenserver war unterbrochen; Ihre Anfrage an {name} ging dabei verloren. Bitte doppelklicken Sie noch einmal.",
    fail_unreachable: "Der Server der Firma ist nicht erreichbar. Ist UDP-Port 5515 gesperrt? Auch TCP-Port 5511 wurde versucht. Prüfen Sie die Internetverbindung.",
    fail_refused: "Der Server der Firma hat dieses Programm abgewiesen. Bitte laden Sie das Support-Programm neu herunter.",
    fail_busy: "Der Server der Firma ist gerade ausgelastet. Bitte versuchen Sie es in einer Minute noch einmal.",
    fail_server_gone: "Die Verbindung zum Server der Firma ist abgebrochen.",
    fail_peer: "Es konnte keine Verbindung aufgebaut werden. Bitte versuchen Sie es noch einmal.",
    fail_local: "Das Programm konnte auf diesem Computer nicht starten.",
    ended_here: "Sie haben die Sitzung beendet.",
    ended_by_technician: "Der Techniker hat die Sitzung beendet.",
    ended_by_customer: "Der Kunde hat die Sitzung beendet.",
    ended_lost: "Die Verbindung ist abgebrochen. Die Sitzung ist beendet.",
    ended_you_declined: "Sie haben den Zugriff abgelehnt. Niemand ist verbunden.",
    ended_customer_declined: "Der Kunde hat den Zugriff nicht erlaubt.",
    viewer_title: "lifebuoy – Techniker",
    signed_in_as: "Angemeldet als {name}",
    waiting_for_requests: "Warten auf Anfragen …",
    server_lost: "Verbindung zum Firmenserver unterbrochen, neuer Versuch in {seconds} s …",
    reconnecting: "Neu anmelden …",
    path_interrupted: "Verbindung zum Kunden unterbrochen, wird wiederhergestellt …",
    asks_for_help: "{label} bittet um Hilfe",
    no_label: "Ein Kunde (ohne Namen)",
    accept: "Annehmen",
    decline: "Ablehnen",
    connecting_to_customer: "Verbindung zu {label} wird aufgebaut …",
    compare_code: "Prüfcode (mit dem Kunden vergleichen):",
    waiting_for_consent: "Warten, bis der Kunde den Zugriff erlaubt …",
    read_code_to_customer: "Lesen Sie dem Kunden diesen Prüfcode vor:",
    connect_failed: "Der Kunde war nicht erreichbar: {why}",
    fit: "Einpassen",
    one_to_one: "1:1",
    monitor: "Monitor",
    ctrl_alt_del: "Strg+Alt+Entf",
    alt_tab: "Alt+Tab",
    super_key: "Windows-Taste",
    alt_f4: "Alt+F4",
    send_file: "Datei senden …",
    send: "Senden",
    path_hint: "Pfad einer Datei oder eines Ordners",
    view_only: "Nur ansehen: der Kunde hat die Steuerung nicht erlaubt.",
    no_files: "Der Kunde nimmt keine Dateien an.",
    first_picture: "Warten auf das erste Bild …",
    transfers: "Übertragungen",
    sent: "gesendet",
    received: "empfangen",
    done: "fertig",
    failed: "fehlgeschlagen: {why}",
    left: "noch {time}",
    skipped: "Nicht gesendet (Verknüpfung oder Sonderdatei): {path}",
    drop_refused: "Nicht gesendet: {why}",
    clipboard_copied: "Zwischenablage des Kunden übernommen ({bytes} Bytes)",
};

/// English.
pub static EN: Texts = Texts {
    agent_title: "{company} remote support",
    signing_in: "Connecting to {company} …",
    trying_tcp: "No answer over UDP port 5515 (blocked?). Trying TCP …",
    staff: "Support staff",
    call_first: "Please call us first. Then double-click the person you are talking to.",
    label_hint: "Your name or customer number (optional)",
    online: "online",
    busy: "busy",
    offline: "offline",
    is_offline: "{name} is not online right now.",
    is_busy: "{name} is in another session right now.",
    nobody: "No support staff are listed.",
    waiting: "Waiting for {name} to accept …",
    cancel: "Cancel",
    connecting_to_technician: "{name} accepted. Connecting …",
    ask_headline: "{name} asks to connect to your computer",
    ask_compare: "Compare this code with the one {name} reads out to you on the phone. Allow only if both are the same.",
    ask_may: "If you allow it, {name} may:",
    allow: "Allow",
    deny: "Deny",
    read_code: "Verification code (compared with {name} on the phone):",
    connected_to: "Connected to {name}",
    may: "{name} may:",
    may_see: "see your screen",
    allow_control: "control mouse and keyboard",
    allow_files: "send you files",
    allow_clipboard: "receive what you copy (clipboard)",
    files: "Files",
    drop_here: "Drop files onto this window to send them.",
    end_session: "End session",
    close: "Close",
    details: "Details",
    tray_tip: "{company}: remote support is running",
    tray_close: "Close (ends the session)",
    refused_unknown: "{name} is not (or no longer) in the company's list.",
    refused_offline: "{name} is not online right now.",
    refused_busy: "{name} is busy. Try again in a moment or choose someone else.",
    refused_declined: "{name} declined the request.",
    refused_no_answer: "{name} did not answer in time.",
    refused_rate: "Too many requests from this network. Please wait a minute.",
    refused_already: "A request is already waiting.",
    request_lost: "The connection to the company server was lost, and your request to {name} with it. Please double-click again.",
    fail_unreachable: "The company server cannot be reached. Is UDP port 5515 blocked? TCP port 5511 was tried too. Check the internet connection.",
    fail_refused: "The company server refused this program. Please download the support program again.",
    fail_busy: "The company server is busy right now. Please try again in a minute.",
    fail_server_gone: "The connection to the company server was lost.",
    fail_peer: "No connection could be made. Please try again.",
    fail_local: "The program could not start on this computer.",
    ended_here: "You ended the session.",
    ended_by_technician: "The technician ended the session.",
    ended_by_customer: "The customer ended the session.",
    ended_lost: "The connection was lost. The session has ended.",
    ended_you_declined: "You did not allow the connection. Nobody is connected.",
    ended_customer_declined: "The customer did not allow the connection.",
    viewer_title: "lifebuoy – technician",
    signed_in_as: "Signed in as {name}",
    waiting_for_requests: "Waiting for requests …",
    server_lost: "Connection to the company server lost, trying again in {seconds} s …",
    reconnecting: "Signing in again …",
    path_interrupted: "Connection to the customer interrupted, restoring it …",
    asks_for_help: "{label} asks for help",
    no_label: "A customer (no name given)",
    accept: "Accept",
    decline: "Decline",
    connecting_to_customer: "Connecting to {label} …",
    compare_code: "Verification code (compare with the customer):",
    waiting_for_consent: "Waiting for the customer to allow the connection …",
    read_code_to_customer: "Read this code out to the customer:",
    connect_failed: "The customer could not be reached: {why}",
    fit: "Fit",
    one_to_one: "1:1",
    monitor: "Monitor",
    ctrl_alt_del: "Ctrl+Alt+Del",
    alt_tab: "Alt+Tab",
    super_key: "Windows key",
    alt_f4: "Alt+F4",
    send_file: "Send file …",
    send: "Send",
    path_hint: "Path of a file or folder",
    view_only: "View only: the customer has not allowed control.",
    no_files: "The customer does not accept files.",
    first_picture: "Waiting for the first picture …",
    transfers: "Transfers",
    sent: "sent",
    received: "received",
    done: "done",
    failed: "failed: {why}",
    left: "{time} left",
    skipped: "Not sent (a link or special file): {path}",
    drop_refused: "Not sent: {why}",
    clipboard_copied: "Copied the customer's clipboard ({bytes} bytes)",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_locales_get_german_and_the_rest_english() {
        assert_eq!(Lang::from_locale("de_DE.UTF-8"), Lang::De);
        assert_eq!(Lang::from_locale("de-AT"), Lang::De);
        assert_eq!(Lang::from_locale("en_US.UTF-8"), Lang::En);
        assert_eq!(Lang::from_locale("fr_FR"), Lang::En);
        assert_eq!(Lang::from_locale(""), Lang::En);
        assert_eq!("DE".parse(), Ok(Lang::De));
        assert!("xx".parse::<Lang>().is_err());
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(fill(EN.waiting, &[("name", "Anna")]), "Waiting for Anna to accept …");
        assert_eq!(fill(DE.is_offline, &[("name", "Anna")]), "Anna ist gerade nicht online.");
    }
}
