"""Kubernetes' naming rules with apimachinery's wording: DNS labels and subdomains, qualified names (label
keys, annotation keys, finalizers) and label values.

Object validation (``metadata``) and selector parsing (``selectors``) both apply them, so a bad label key
gets the same message whether it arrives in an object or in a ``labelSelector``.
"""

from __future__ import annotations

import re

DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = DNS_LABEL + "(\\." + DNS_LABEL + ")*"
_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_VALUE_FMT = f"({_NAME_FMT})?"
_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
             "and must start and end with an alphanumeric character")
_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                  "'-' or '.', and must start and end with an alphanumeric character")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
              "and must start and end with an alphanumeric character")


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


SUBDOMAIN_MESSAGE = _regex_error(_SUBDOMAIN_MSG, DNS_SUBDOMAIN, "example.com")
LABEL_NAME_MESSAGE = _regex_error(_LABEL_MSG, DNS_LABEL, "my-name", "123-abc")


def qualified_name_errors(key: str) -> list[str]:
    """``validation.IsQualifiedName``: an optional DNS-subdomain prefix, ``/``, and a 63-character name."""
    parts = key.split("/")
    if len(parts) > 2:
        return ["a qualified name " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    errors: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not re.fullmatch(DNS_SUBDOMAIN, prefix):
                errors.append("prefix part " + SUBDOMAIN_MESSAGE)
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not re.fullmatch(_NAME_FMT, name):
        errors.append("name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc"))
    return errors


def label_value_errors(value: str) -> list[str]:
    """``validation.IsValidLabelValue``: empty, or at most 63 qualified-name characters."""
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not re.fullmatch(_VALUE_FMT, value):
        errors.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors
