"""Writes src/core/area_codes.txt: each NANP area code (NPA) -> the jurisdiction it serves, one
`NPA|CODE` per line, from the `phonenumbers` package (which ships libphonenumber's
resources/geocoding/en/1.txt as `phonenumbers.geodata`, and its metadata as `phonenumbers.data`).

The map comes from the same libphonenumber release as the validator and the zones map
(zones_data.py beside this file): install the version of `phonenumbers` whose metadata equals
the `rlibphonenumber` crate's (`dialerd --version` prints it), then regenerate:

    pip install phonenumbers==9.0.42
    python3 src/core/area_codes.py > src/core/area_codes.txt

How each NPA is mapped, first rule that applies:
1. An NPA that libphonenumber's metadata gives to a NANP region other than US and CA (its
   `leading_digits`, e.g. JM 658|876) -> that region: US territories as ISO 3166-2 `US-PR`,
   `US-GU`, `US-VI`, `US-MP`, `US-AS`; other countries as ISO 3166-1 alpha-2 (`JM`, `BS`, `BM`).
   The English geocoding data has no NPA-level line for most of these.
2. The English geocoding line for the 4-digit prefix `1NPA` ("Florida", "Chicago, IL",
   "Toronto, ON", "Washington State") -> `US-XX` / `CA-XX`.
3. No such line: the geocoding lines for longer prefixes `1NPA...` ("Ansonia, CT"), when they
   all name one state or province.
4. A description naming several provinces of one country ("Nova Scotia/Prince Edward Island")
   -> the country (`CA`), so that country-wide rules still apply; see AMBIGUOUS_TO_COUNTRY.
Anything else (a description that names no known place, or places in several countries) is
left out and counted in the header. Non-geographic codes (toll-free 8XX, 900, 5XX personal,
600 and so on) have no geocoding and are left out.
"""

import datetime
import re

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE
from phonenumbers.geodata import GEOCODE_DATA

# Set to False to leave out, rather than map to their country, NPAs whose description names
# several subdivisions of one country.
AMBIGUOUS_TO_COUNTRY = True

# NANP regions that are US territories (ISO 3166-2:US codes).
US_TERRITORIES = {"PR", "GU", "VI", "MP", "AS"}

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL",
    "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR",
    "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Puerto Rico": "PR", "Guam": "GU", "Northern Mariana Islands": "MP", "American Samoa": "AS",
}
CA_PROVINCES = {
    "Alberta": "AB", "British Columbia": "BC", "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Nova Scotia": "NS", "Northwest Territories": "NT",
    "Nunavut": "NU", "Ontario": "ON", "Prince Edward Island": "PE", "Quebec": "QC",
    "Saskatchewan": "SK", "Yukon": "YT",
}
# Spellings the geocoding data uses besides the plain names.
ALIASES = {
    "Washington State": "US-WA", "Washington D.C.": "US-DC", "Washington, D.C.": "US-DC",
    "British Colombia": "CA-BC", "Québec": "CA-QC", "Newfoundland": "CA-NL",
    "US Virgin Islands": "US-VI", "Virgin Islands": "US-VI",
}

NAMES = {**{n: f"US-{a}" for n, a in US_STATES.items()}, **{n: f"CA-{a}" for n, a in CA_PROVINCES.items()}, **ALIASES}
ABBREVS = {a: f"US-{a}" for a in US_STATES.values()} | {a: f"CA-{a}" for a in CA_PROVINCES.values()}


def place(desc):
    """The codes one description names: a name, a `/`-joined list of names, or `Place, XX`."""
    desc = desc.strip()
    if desc in NAMES:
        return {NAMES[desc]}
    if "/" in desc:
        parts = [place(p) for p in desc.split("/")]
        return set().union(*parts) if all(parts) else set()
    m = re.fullmatch(r".*,\s*([A-Z]{2})", desc)
    if m and m.group(1) in ABBREVS:
        return {ABBREVS[m.group(1)]}
    return set()


def region_npas():
    """NPA -> code for the NANP regions other than US and CA, from their leading digits."""
    out = {}
    for region in _COUNTRY_CODE_TO_REGION_CODE[1]:
        if region in ("US", "CA"):
            continue
        lead = PhoneMetadata.metadata_for_region(region).leading_digits or ""
        for n in range(200, 1000):
            if re.fullmatch(f"(?:{lead})", str(n)):
                out[str(n)] = f"US-{region}" if region in US_TERRITORIES else region
    return out


english = {k: v["en"] for k, v in GEOCODE_DATA.items() if k.startswith("1") and len(k) >= 4 and v.get("en")}
by_npa = {}
for prefix, desc in english.items():
    by_npa.setdefault(prefix[1:4], {})[prefix] = desc

regions = region_npas()
mapped, left_out, to_country, from_longer = {}, [], [], []
for npa in sorted(set(by_npa) | set(regions)):
    if npa in regions:
        mapped[npa] = regions[npa]
        continue
    lines = by_npa[npa]
    if "1" + npa in lines:
        codes = place(lines["1" + npa])
    else:
        named = [place(d) for d in lines.values()]
        codes = set().union(*named) if all(named) else set()
        if len(codes) == 1:
            from_longer.append(npa)
    if len(codes) == 1:
        mapped[npa] = codes.pop()
    elif codes and AMBIGUOUS_TO_COUNTRY and len({c[:2] for c in codes}) == 1:
        mapped[npa] = next(iter(codes))[:2]
        to_country.append(npa)
    else:
        left_out.append(npa)

lines = [f"{npa}|{code}" for npa, code in sorted(mapped.items())]

print(f"""\
# NANP area code (NPA) -> jurisdiction, one `NPA|CODE` per line: ISO 3166-2 `US-XX` for US states,
# DC and territories, `CA-XX` for Canadian provinces and territories, ISO 3166-1 alpha-2 for the
# other NANP countries (`JM`, `BS`, `BM`). Generated by area_codes.py beside this file.
# Source: libphonenumber's resources/geocoding/en/1.txt and NANP region metadata, as shipped in
# the PyPI package `phonenumbers` {phonenumbers.__version__} (modules phonenumbers.geodata, phonenumbers.data),
# on {datetime.date.today()}. Copyright (C) 2011-2026 The Libphonenumber Authors; Apache License 2.0.
# {len(lines)} area codes: {len(regions)} from the metadata of NANP regions other than US and CA, {len(from_longer)} from
# longer-prefix geocoding lines only ({", ".join(from_longer) or "none"}), {len(to_country)} mapped to their country because
# the description names several of its provinces ({", ".join(to_country) or "none"}).
# Left out, ambiguous or unnamed: {len(left_out)} ({", ".join(left_out) or "none"}); non-geographic codes have no line.
# It must match the validator's metadata (`dialerd --version`). To regenerate:
#   pip install phonenumbers==<that version>
#   python3 src/core/area_codes.py > src/core/area_codes.txt""")
print("\n".join(lines))
