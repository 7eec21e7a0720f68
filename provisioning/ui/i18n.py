"""The web pages' words in Norwegian Bokmål and English.

One table, key → (nb, en). A page asks ``t("key")``; a missing key is a
KeyError in the tests (tests/ui/test_i18n.py renders every template in both
languages), never an English word on a Norwegian page.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LANGUAGES", "TEXTS", "translate", "pick_language"]

LANGUAGES: Final = ("nb", "en")

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "app_title": ("Softswitch – drift", "Softswitch – operations"),
    "minside_title": ("Min side", "My page"),
    "login": ("Logg inn", "Log in"),
    "logout": ("Logg ut", "Log out"),
    "username": ("Brukernavn", "Username"),
    "password": ("Passord", "Password"),
    "customer_number": ("Kundenummer", "Customer number"),
    "login_failed": ("Feil brukernavn eller passord.", "Wrong username or password."),
    "login_throttled": (
        "For mange mislykkede forsøk. Prøv igjen om {seconds} sekunder.",
        "Too many failed attempts. Try again in {seconds} seconds.",
    ),
    "csrf_failed": (
        "Skjemaet var utløpt eller ikke sendt fra denne siden. Last siden på nytt og prøv igjen.",
        "The form had expired or did not come from this page. Reload the page and try again.",
    ),
    "search": ("Søk", "Search"),
    "search_hint": ("Nummer, MAC, navn eller kundenummer", "Number, MAC, name or customer number"),
    "search_results": ("Søkeresultat", "Search results"),
    "no_results": ("Ingen treff for «{q}».", "Nothing found for “{q}”."),
    "dashboard": ("Oversikt", "Dashboard"),
    "registered_lines": ("Registrerte linjer", "Registered lines"),
    "of_all_lines": ("av {total} linjer", "of {total} lines"),
    "calls_in_progress": ("Samtaler nå", "Calls in progress"),
    "calls_per_minute": ("Samtaler per minutt, siste time", "Calls per minute, last hour"),
    "attention_adapters": ("Adaptere med rødt eller slukket lys", "Adapters with a red or unlit lamp"),
    "active_suspensions": ("Aktive sperringer", "Active suspensions"),
    "fraud_alerts": ("Misbruksvarsler", "Fraud alerts"),
    "none": ("Ingen", "None"),
    "customer": ("Kunde", "Customer"),
    "customers": ("Kunder", "Customers"),
    "name": ("Navn", "Name"),
    "kind": ("Type", "Kind"),
    "language": ("Språk", "Language"),
    "state": ("Status", "State"),
    "adapters": ("Adaptere", "Adapters"),
    "adapter": ("Adapter", "Adapter"),
    "model": ("Modell", "Model"),
    "lines": ("Linjer", "Lines"),
    "line": ("Linje", "Line"),
    "number": ("Nummer", "Number"),
    "port": ("Port", "Port"),
    "registered": ("Registrert", "Registered"),
    "not_registered": ("Ikke registrert", "Not registered"),
    "lamps": ("Lamper", "Lamps"),
    "lamp_history": ("Lampehistorikk", "Lamp history"),
    "since": ("siden", "since"),
    "lamp_ok": ("grønn, lyser fast", "green, steady"),
    "lamp_warning": ("rød, blinker", "red, blinking"),
    "lamp_off": ("slukket", "off"),
    "resync": ("Be adapteren hente oppsett nå", "Ask the adapter to fetch its config now"),
    "resync_sent": ("Forespørsel sendt: {result}", "Request sent: {result}"),
    "staging_values": ("Vis oppsettverdier", "Show staging values"),
    "config_fetches": ("Oppsetthentinger", "Config fetches"),
    "calls": ("Samtaler", "Calls"),
    "time": ("Tid", "Time"),
    "direction": ("Retning", "Direction"),
    "from": ("Fra", "From"),
    "to": ("Til", "To"),
    "dialled": ("Slått nummer", "Dialled"),
    "duration": ("Varighet", "Duration"),
    "cause": ("Årsak", "Cause"),
    "support_code": ("Kode", "Code"),
    "price": ("Pris", "Price"),
    "why": ("Hvorfor?", "Why?"),
    "why_failed": ("Hvorfor gikk samtalen ikke gjennom", "Why did this call fail"),
    "forwarded_from": ("Viderekoblet fra", "Forwarded from"),
    "forwarding": ("Viderekobling", "Call forwarding"),
    "barring": ("Sperretjeneste", "Call barring"),
    "suspensions": ("Sperringer", "Suspensions"),
    "not_found": ("Fant ikke {what}.", "{what} not found."),
    "forbidden": ("Du har ikke tilgang til dette.", "You do not have access to this."),
    "back": ("Tilbake", "Back"),
    "skip_to_content": ("Hopp til innholdet", "Skip to content"),
    "switch_language": ("English", "Norsk"),
    "unlisted": ("Unntatt fra nummeropplysning", "Unlisted"),
    "enabled": ("Aktiv", "Enabled"),
    "disabled": ("Deaktivert", "Disabled"),
    "yes": ("Ja", "Yes"),
    "no": ("Nei", "No"),
    "contacts": ("Kontakter", "Contacts"),
    "postal_address": ("Postadresse", "Postal address"),
    "fwd_unconditional": ("Alle anrop", "All calls"),
    "fwd_busy": ("Ved opptatt", "When busy"),
    "fwd_no_answer": ("Ved ikke svar", "When not answered"),
    "fwd_unreachable": ("Når telefonen ikke kan nås", "When unreachable"),
    "target": ("Viderekoble til", "Forward to"),
    "ring_time": ("Ringetid (sekunder, 5–120)", "Ring time (seconds, 5–120)"),
    "save": ("Lagre", "Save"),
    "remove": ("Fjern", "Remove"),
    "off": ("Av", "Off"),
    "bar_international": ("Utland", "International"),
    "bar_mobile": ("Mobil", "Mobile"),
    "bar_premium": ("Teletorg (815, 820, 829)", "Premium rate (815, 820, 829)"),
    "bar_directory": ("Nummeropplysning (18xx)", "Directory enquiries (18xx)"),
    "bar_shared_cost": ("Delt kostnad (810)", "Shared cost (810)"),
    "bar_special": ("Femsifrede og andre spesialnummer", "Five-digit and other special numbers"),
    "bar_all_outgoing": ("Alle utgående anrop", "All outgoing calls"),
    "set_by_operator": ("satt av kundeservice", "set by customer service"),
    "emergency_never_barred": (
        "Nødnumrene 110, 112 og 113 kan alltid ringes.", "The emergency numbers 110, 112 and 113 can always be called."
    ),
    "change_password": ("Bytt passord", "Change password"),
    "current_password": ("Nåværende passord", "Current password"),
    "new_password": ("Nytt passord (minst 10 tegn)", "New password (at least 10 characters)"),
    "repeat_password": ("Gjenta nytt passord", "Repeat new password"),
    "password_changed": ("Passordet er byttet.", "Your password has been changed."),
    "download_csv": ("Last ned som CSV", "Download as CSV"),
    "my_lines": ("Mine linjer", "My lines"),
    "service_unavailable": ("Tjenesten er ikke tilgjengelig akkurat nå.", "This service is not available right now."),
    "answered": ("besvart", "answered"),
    "not_answered": ("ikke besvart", "not answered"),
    "level": ("Nivå", "Level"),
    "reason": ("Grunn", "Reason"),
    "note": ("Notat", "Note"),
    "by": ("av", "by"),
    "lifted": ("Opphevet", "Lifted"),
    "active": ("Aktiv", "Active"),
    "timeline_empty": ("Ingen endringer registrert.", "No changes recorded."),
    "no_calls": ("Ingen samtaler.", "No calls."),
    "unclaimed": ("Ukjente adaptere", "Unclaimed adapters"),
    "assign": ("Knytt til kunde", "Assign to customer"),
    "first_seen": ("Først sett", "First seen"),
    "last_seen": ("Sist sett", "Last seen"),
    "address": ("Adresse", "Address"),
    "fetches": ("Hentinger", "Fetches"),
    "import": ("Import", "Import"),
    "import_file": ("Kundefil (YAML eller JSON)", "Customer file (YAML or JSON)"),
    "import_text": ("… eller lim inn", "… or paste it"),
    "import_run": ("Importer", "Import"),
    "import_done": ("Importert: {summary}", "Imported: {summary}"),
    "import_failed": ("Ingenting ble endret. Rett disse feilene:", "Nothing was changed. Fix these problems:"),
    "entry": ("Oppføring", "Entry"),
    "problem": ("Feil", "Problem"),
    "audit": ("Logg", "Audit log"),
    "actor": ("Hvem", "Who"),
    "action": ("Hva", "What"),
    "subject": ("Objekt", "Object"),
    "details": ("Detaljer", "Details"),
    "filter": ("Filtrer", "Filter"),
    "trunks": ("Trunker og ruter", "Trunks and routes"),
    "routes": ("Ruter", "Routes"),
    "prefix": ("Prefiks", "Prefix"),
    "host": ("Vert", "Host"),
    "emergency": ("Nød", "Emergency"),
    "users": ("Brukere", "Users"),
    "tokens": ("API-nøkler", "API tokens"),
    "role": ("Rolle", "Role"),
    "label": ("Merkelapp", "Label"),
    "create": ("Opprett", "Create"),
    "revoke": ("Trekk tilbake", "Revoke"),
    "shown_once": ("Vises bare én gang – ta vare på den:", "Shown only once — keep it safe:"),
    "created_at": ("Opprettet", "Created"),
    "last_login": ("Sist innlogget", "Last login"),
    "trunks_edit_hint": ("Endres med import av en fil med trunks og routes.", "Changed by importing a file with trunks and routes."),
    "staging_hint": (
        "Skriv disse inn på adapterens egen nettside når den settes opp for hånd. Lesingen logges.",
        "Type these into the adapter's own web page when staging it by hand. Reading them is logged.",
    ),
    "profile_url": ("Oppsett-URL", "Profile URL"),
    "parameter": ("Parameter", "Parameter"),
    "value": ("Verdi", "Value"),
    "disable": ("Deaktiver", "Disable"),
    "enable": ("Aktiver", "Enable"),
    "reset_password": ("Nytt passord", "Reset password"),
    "suspend": ("Sperr", "Suspend"),
    "lift": ("Opphev", "Lift"),
    "optional": ("valgfritt", "optional"),
    "all_lines": ("Alle linjer", "All lines"),
    "level_soft": ("Myk: kun nødnummer og kundeservice ut, innkommende ringer", "Soft: only emergency and customer service out, incoming rings"),
    "level_hard": ("Hard: kun nødnummer ut, innkommende avvises", "Hard: only emergency out, incoming refused"),
    "reason_unpaid": ("Ubetalt faktura", "Unpaid invoice"),
    "reason_credit_limit": ("Kredittgrense", "Credit limit"),
    "reason_fraud": ("Misbruk", "Fraud"),
    "reason_customer_request": ("Kundens ønske", "Customer's request"),
    "reason_other": ("Annet", "Other"),
}


def translate(lang: str, key: str, **values: object) -> str:
    nb, en = TEXTS[key]
    text = en if lang == "en" else nb
    return text.format(**values) if values else text


def pick_language(cookie: str | None, accept_language: str | None, default: str = "nb") -> str:
    """The cookie's choice, else the browser's first supported language, else ``default``."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()
        base = tag.split("-", 1)[0]
        if base in ("nb", "no", "nn"):
            return "nb"
        if base == "en":
            return "en"
    return default
