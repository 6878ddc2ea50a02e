"""The initiative's register data (REQ-10): what the Commission's register publishes and the signing
form must show. Checks shared by onboarding, the lifecycle and the audited correction; no writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses, quote
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from regulation.languages import OFFICIAL_LANGUAGE_CODES

# The fields that make up the register data: frozen once collection has opened (REQ-10).
REGISTER_FIELDS = (
    "registered_language",
    "languages",
    "title",
    "subject",
    "objectives",
    "register_url",
    "contact_persons",
)
TEXT_FIELDS = ("title", "subject", "objectives")
# Regulation (EU) 2019/788, Annex II: the lengths the register itself allows.
TEXT_MAX_LENGTH = {"title": 200, "subject": 200, "objectives": 1200}
CONTACT_NAME_MAX_LENGTH = 200
URL_MAX_LENGTH = 200  # Initiative.register_url is a URLField of the default length
# Art. 5(3) of Regulation (EU) 2019/788: a representative and a substitute.
MINIMUM_CONTACT_PERSONS = 2

_web_address = URLValidator(schemes=["http", "https"])


@dataclass(frozen=True)
class ContactPerson:
    name: str
    email: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email}


def contact_person_parse(text: str) -> ContactPerson:
    """`Name <email>` as on the register; ValueError (without echoing the input) when it is not one."""
    text = text.strip()
    if not text:
        raise ValueError("A contact person is empty; give it as Name <email>.")
    if any(ord(character) < 32 for character in text):
        raise ValueError("A contact person must be on one line.")
    addresses = getaddresses([text])
    if len(addresses) != 1:
        raise ValueError("Give one contact person at a time, as Name <email>.")
    name, email = addresses[0]
    person = ContactPerson(name=" ".join(name.split()), email=email.strip())
    problems = contact_person_problems(person.as_dict())
    if problems:
        raise ValueError(" ".join(problems))
    return person


def contact_person_format(person: Mapping[str, Any]) -> str:
    """`Name <email>`, the form contact_person_parse reads; the name quoted when it needs to be.
    (email.utils.formataddr would encode a name like Zoë as RFC 2047, unreadable in a form.)"""
    name, email = str(person.get("name", "")), str(person.get("email", ""))
    if any(character in name for character in '()<>@,;:\\".[]'):
        name = f'"{quote(name)}"'
    return f"{name} <{email}>"


def contact_person_problems(person: Mapping[str, Any]) -> list[str]:
    problems = []
    name, email = person.get("name"), person.get("email")
    if not isinstance(name, str) or not name.strip():
        problems.append("A contact person needs a name, as Name <email>.")
    elif len(name) > CONTACT_NAME_MAX_LENGTH:
        problems.append(f"A contact person's name may be at most {CONTACT_NAME_MAX_LENGTH} characters long.")
    try:
        validate_email(email)
    except ValidationError:
        problems.append("A contact person needs a valid e-mail address, as Name <email>.")
    return problems


def contact_persons_problems(persons: Iterable[Mapping[str, Any]]) -> list[str]:
    """What is wrong with a list of contact persons: each one valid, at least two, no address twice."""
    if isinstance(persons, str | Mapping) or not isinstance(persons, Iterable):
        return ['The contact persons are a list: [{"name": ..., "email": ...}, ...].']
    persons = list(persons)
    problems: list[str] = []
    for person in persons:
        if not isinstance(person, Mapping) or set(person) != {"name", "email"}:
            problems.append('Each contact person is {"name": ..., "email": ...}.')
            continue
        problems.extend(problem for problem in contact_person_problems(person) if problem not in problems)
    if len(persons) < MINIMUM_CONTACT_PERSONS:
        problems.append(
            "Give at least two contact persons, the representative and the substitute "
            "(Art. 5(3) of Regulation (EU) 2019/788)."
        )
    emails = [str(person.get("email", "")).lower() for person in persons if isinstance(person, Mapping)]
    if len(set(emails)) != len(emails):
        problems.append("Each contact person needs an e-mail address of their own.")
    return problems


def register_url_problems(url: str) -> list[str]:
    if not url:
        return ["The address of the initiative on the Commission's register is required."]
    if len(url) > URL_MAX_LENGTH:
        return [f"The register URL may be at most {URL_MAX_LENGTH} characters long."]
    try:
        _web_address(url)
    except ValidationError:
        return ["The register URL must be an http(s) address."]
    return []


def register_text_problems(field: str, texts: object) -> list[str]:
    """A register text: {language code: text}, official languages only, within the register's lengths."""
    if not isinstance(texts, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in texts.items()
    ):
        return [f'The {field} is {{"<language code>": "<text>", ...}}.']
    problems = []
    unknown = sorted(code for code in texts if code not in OFFICIAL_LANGUAGE_CODES)
    if unknown:
        problems.append(f"Not official EU languages: {', '.join(unknown)}.")
    limit = TEXT_MAX_LENGTH[field]
    if any(len(text) > limit for text in texts.values()):
        problems.append(f"The {field} may be at most {limit} characters long in each language.")
    return problems


def register_data_missing(initiative: Any) -> list[str]:
    """What collection cannot open without (REQ-10), in words; empty when the register data is complete.
    `initiative` is an Initiative or anything with its register fields."""
    language = initiative.registered_language
    missing = []
    for field in TEXT_FIELDS:
        texts = getattr(initiative, field)
        if not (isinstance(texts, dict) and str(texts.get(language) or "").strip()):
            missing.append(f"the {field} in the registered language ({language})")
    if register_url_problems(initiative.register_url or ""):
        missing.append("the register URL")
    if contact_persons_problems(initiative.contact_persons or []):
        missing.append("two valid contact persons (the representative and the substitute)")
    return missing


def register_data_problems(initiative: Any) -> list[str]:
    """Everything wrong with an initiative's register data: invalid values and what is missing. Empty
    when it is valid and complete, as collection and an audited correction need it."""
    problems: list[str] = []
    if initiative.registered_language not in OFFICIAL_LANGUAGE_CODES:
        problems.append("The registered language must be one of the 24 official EU languages.")
    languages = initiative.languages
    if not isinstance(languages, list | tuple) or not all(
        code in OFFICIAL_LANGUAGE_CODES for code in languages
    ):
        problems.append("The languages must be official EU language codes.")
    elif initiative.registered_language not in languages:
        problems.append("The languages must include the registered language.")
    for field in TEXT_FIELDS:
        problems.extend(register_text_problems(field, getattr(initiative, field)))
    if initiative.register_url:
        problems.extend(register_url_problems(initiative.register_url))
    problems.extend(contact_persons_problems(initiative.contact_persons))
    missing = register_data_missing(initiative)
    if missing:
        problems.append("Missing: " + "; ".join(missing) + ".")
    return problems
