"""The operator's price list, row by row: a number → its zone → the price of a 1 s, 60 s and 61 s call.

The rows below are copied from the published price list (Phonect, valid from
31.10.2015: "Samtaler fra Norge til utland", "Grupperinger – Norge til
utland", "Samtaler til spesialnummer"), NOK with a decimal comma as printed.
The expected price is computed here with ``Decimal`` from the printed NOK
figures (start fee + per-minute × seconds / 60, rounded up to a whole øre),
independently of the rater's integer arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest

from switch.services.rating.rater import Rater
from switch.services.rating.tariff import bundled_tariff_paths, countries, load_tariff

# "Samtaler fra Norge til utland": Destinasjon, Oppstart, Pris pr. min — and a number in that zone.
INTERNATIONAL = [
    ("Norden", "0,59", "1,79", "nordic", "+46812345678"),
    ("USA og Canada", "0,59", "1,59", "usa_canada", "+12125550123"),
    ("Europa og Australia", "0,59", "2,79", "europe_australia", "+4930123456"),
    ("Verden 1", "0,59", "2,79", "world1", "+81312345678"),
    ("Verden 2", "0,59", "6,99", "world2", "+919812345678"),
    ("Verden 3", "0,59", "8,99", "world3", "+5511987654321"),
    ("Verden 4", "0,59", "10,99", "world4", "+5411123456789"),
]

# "Samtaler til spesialnummer": Spesialnummer, Oppstart, Pris pr. min — numbers as dialled nationally.
SPECIAL = [
    ("110,112,113", "0,-", "0,-", "emergency", ["110", "112", "113"]),
    ("115,117", "0,52", "0,8", "special_115_117", ["115", "117"]),
    ("175,177", "0,52", "1,61", "special_175_177", ["175", "177"]),
    ("815 / 5-sifret nr.", "0,52", "2,41", "special_815_5digit", ["+4781512345", "02800", "09999"]),
    ("800", "0,-", "0,-", "freephone_800", ["+4780012345"]),
    ("810-14", "0,52", "0,82", "shared_cost_810_814",
     ["+4781012345", "+4781112345", "+4781212345", "+4781312345", "+4781412345"]),
    ("815", "0,52", "2,41", "special_815_5digit", ["+4781556510"]),
    ("819", "0,52", "0,82", "special_819", ["+4781912345"]),
    ("999", "0,52", "0,82", "special_999", ["+4799912345"]),
    ("1860", "8,-", "18,53", "service_1860", ["1860"]),
    ("1880", "13,99", "24,99", "service_1880", ["1880"]),
    ("1881", "10,-", "18,53", "service_1881", ["1881"]),
    ("1882", "10,-", "18,53", "service_1882", ["1882"]),
    ("1885", "8,-", "18,53", "service_1885", ["1885"]),
    ("1888", "24,99", "6,99", "service_1888", ["1888"]),
    ("1890", "8,-", "18,53", "service_1890", ["1890"]),
    ("820 0", "0,52", "5,91", "premium_8200", ["+4782001234"]),
    ("820 1-2", "0,52", "10,07", "premium_8201_8202", ["+4782011234", "+4782021234"]),
    ("820 3", "0,52", "5,23", "premium_8203", ["+4782031234"]),
    ("820 5", "0,52", "6,85", "premium_8205", ["+4782051234"]),
    ("820 6", "0,52", "8,46", "premium_8206", ["+4782061234"]),
    ("820 7", "0,52", "12,9", "premium_8207", ["+4782071234"]),
    ("820 8", "0,52", "18,14", "premium_8208", ["+4782081234"]),
    ("820 9", "0,52", "21,77", "premium_8209", ["+4782091234"]),
    ("829 0", "0,52", "5,91", "premium_8290", ["+4782901234"]),
    ("829 1-2", "0,52", "10,07", "premium_8291_8292", ["+4782911234", "+4782921234"]),
    ("829 3", "0,52", "5,23", "premium_8293", ["+4782931234"]),
    ("829 5", "0,52", "6,85", "premium_8295", ["+4782951234"]),
    ("829 6", "0,52", "8,46", "premium_8296", ["+4782961234"]),
    ("829 7", "0,52", "12,9", "premium_8297", ["+4782971234"]),
    ("829 8", "0,52", "18,14", "premium_8298", ["+4782981234"]),
    ("829 9", "0,52", "21,77", "premium_8299", ["+4782991234"]),
    ("820 40", "20,16", "2,41", "premium_82040", ["+4782040123"]),
    ("820 41", "40,32", "2,41", "premium_82041", ["+4782041123"]),
    ("820 42", "60,48", "2,41", "premium_82042", ["+4782042123"]),
    ("820 43", "80,64", "2,41", "premium_82043", ["+4782043123"]),
    ("820 44", "160,-", "2,41", "premium_82044", ["+4782044123"]),
    ("820 47", "60,48", "2,41", "premium_82047", ["+4782047123"]),
    ("820 48", "80,65", "2,41", "premium_82048", ["+4782048123"]),
    ("820 49", "160,-", "2,41", "premium_82049", ["+4782049123"]),
]

# "Grupperinger – Norge til utland", one number per listed country (zone id, country, number).
COUNTRIES = [
    ("nordic", "Finland", "+358912345678"), ("nordic", "Danmark", "+4533123456"),
    ("nordic", "Island", "+3545512345"), ("nordic", "Sverige", "+46812345678"),
    ("usa_canada", "USA", "+12125550123"), ("usa_canada", "Canada", "+14165550123"),
    ("europe_australia", "Australia", "+61212345678"), ("europe_australia", "Belgia", "+3221234567"),
    ("europe_australia", "Bulgaria", "+35921234567"), ("europe_australia", "Estland", "+3726123456"),
    ("europe_australia", "Frankrike", "+33123456789"), ("europe_australia", "Hellas", "+302101234567"),
    ("europe_australia", "Irland", "+35311234567"), ("europe_australia", "Italia", "+390612345678"),
    ("europe_australia", "Kroatia", "+38511234567"), ("europe_australia", "Kypros", "+35722123456"),
    ("europe_australia", "Latvia", "+37161234567"), ("europe_australia", "Litauen", "+37052123456"),
    ("europe_australia", "Luxembourg", "+352123456"), ("europe_australia", "Malta", "+35621234567"),
    ("europe_australia", "Nederland", "+31201234567"), ("europe_australia", "Polen", "+48221234567"),
    ("europe_australia", "Portugal", "+351211234567"), ("europe_australia", "Romania", "+40211234567"),
    ("europe_australia", "Slovakia", "+421212345678"), ("europe_australia", "Slovenia", "+38611234567"),
    ("europe_australia", "Spania", "+34911234567"), ("europe_australia", "Storbritannia", "+442071234567"),
    ("europe_australia", "Liechenstein", "+4232345678"), ("europe_australia", "Tsjekkia", "+420212345678"),
    ("europe_australia", "Tyrkia", "+902121234567"), ("europe_australia", "Tyskland", "+4930123456"),
    ("europe_australia", "Ungarn", "+3611234567"), ("europe_australia", "Vatikanstaten", "+390669812345"),
    ("europe_australia", "Østerrike", "+4311234567"),
    ("world1", "Grønland", "+299321234"), ("world1", "Hong Kong", "+85221234567"),
    ("world1", "Israel", "+97221234567"), ("world1", "Japan", "+81312345678"),
    ("world1", "Malaysia", "+60312345678"), ("world1", "New Zealand", "+6491234567"),
    ("world1", "Russland", "+74951234567"), ("world1", "Singapore", "+6561234567"),
    ("world1", "Sør-Korea", "+8221234567"), ("world1", "Taiwan", "+886212345678"),
    ("world2", "Sør-Afrika", "+27211234567"), ("world2", "Armenia", "+37410123456"),
    ("world2", "De forente arabiske emirater", "+97141234567"), ("world2", "Fillipinene", "+6321234567"),
    ("world2", "Georgia", "+995321234567"), ("world2", "India", "+911123456789"),
    ("world2", "Kina", "+861012345678"), ("world2", "Kirgisistan", "+996312123456"),
    ("world2", "San Marino", "+378549123456"), ("world2", "Saudi Arabia", "+966112345678"),
    ("world2", "Thailand", "+6621234567"),
    ("world3", "Algerie", "+21321123456"), ("world3", "Angola", "+244222123456"),
    ("world3", "Aruba", "+2975212345"), ("world3", "Ascension og Tristan da Cunha", "+24762123"),
    ("world3", "Bahamas", "+12423221234"), ("world3", "Bangladesh", "+88021234567"),
    ("world3", "Bonaire", "+5997171234"), ("world3", "Botswana", "+2673123456"),
    ("world3", "Brasil", "+551112345678"), ("world3", "Brunei", "+6732123456"),
    ("world3", "Burundi", "+25722212345"), ("world3", "Caymanøyene", "+13459491234"),
    ("world3", "Chile", "+56221234567"), ("world3", "Colombia", "+5712345678"),
    ("world3", "Curaçao", "+59994612345"), ("world3", "De amerikanske jomfruøyene", "+13407741234"),
    ("world3", "Falklandsøyene", "+50021234"), ("world3", "Gabon", "+24101123456"),
    ("world3", "Gambia", "+2204412345"), ("world3", "Ghana", "+233302123456"),
    ("world3", "Guadeloupe", "+590590123456"), ("world3", "Guatemala", "+50221234567"),
    ("world3", "Indonesia", "+62211234567"), ("world3", "Irak", "+96412345678"),
    ("world3", "Jemen", "+9671123456"), ("world3", "Jordan", "+96261234567"),
    ("world3", "Kasakhstan", "+77172123456"), ("world3", "Libya", "+218211234567"),
    ("world3", "Macao", "+85328123456"), ("world3", "Malawi", "+2651123456"),
    ("world3", "Marokko", "+212522123456"), ("world3", "Martinique", "+596596123456"),
    ("world3", "Mayotte", "+262269612345"), ("world3", "Mexico", "+525512345678"),
    ("world3", "Mosambik", "+25821123456"), ("world3", "Namibia", "+26461123456"),
    ("world3", "Oman", "+96824123456"), ("world3", "Pakistan", "+92211234567"),
    ("world3", "Puerto Rico", "+17875551234"), ("world3", "Reunion", "+262262123456"),
    ("world3", "Saint Helena", "+29022123"), ("world3", "Saint Pierre og Peru", "+508411234"),
    ("world3", "Saint Pierre og Peru", "+5111234567"), ("world3", "Sint Eustatius og Saba", "+5993181234"),
    ("world3", "Sri Lanka", "+94112345678"), ("world3", "Swaziland", "+26824041234"),
    ("world3", "Tunisia", "+21671123456"), ("world3", "Uganda", "+256414123456"),
    ("world3", "Venezuela", "+582121234567"), ("world3", "Zambia", "+260211123456"),
    ("world3", "Zimbabwe", "+263242123456"),
    ("world4", "Afghanistan", "+93201234567"), ("world4", "Anguilla", "+12644971234"),
    ("world4", "Antigua og Barbuda", "+12684601234"), ("world4", "Argentina", "+541112345678"),
    ("world4", "Aserbajdsjan", "+994121234567"), ("world4", "Bahrain", "+97317123456"),
    ("world4", "Barbados", "+12464301234"), ("world4", "Belize", "+5012221234"),
    ("world4", "Benin", "+22921301234"), ("world4", "Bermuda", "+14412951234"),
    ("world4", "Bhutan", "+9752321234"), ("world4", "Bolivia", "+59121234567"),
    ("world4", "Burkina Faso", "+22625301234"), ("world4", "Chad", "+23522512345"),
    ("world4", "Cookøyene", "+68221234"), ("world4", "Costa Rica", "+50622123456"),
    ("world4", "Cuba", "+5371234567"), ("world4", "De britiske Jomfruøyer", "+12844941234"),
    ("world4", "Den dominikanske republikk", "+18095551234"),
    ("world4", "Den sentralafrikanske republikk", "+23621612345"), ("world4", "Diego Garcia", "+2463701234"),
    ("world4", "Djibouti", "+25321351234"), ("world4", "Dominica", "+17674481234"),
    ("world4", "Ecuador", "+59321234567"), ("world4", "Egypt", "+20212345678"),
    ("world4", "Ekvatorial-Guinea", "+240333091234"), ("world4", "El Salvador", "+50321234567"),
    ("world4", "Elfenbenkysten", "+2252721234567"), ("world4", "Eritrea", "+2911123456"),
    ("world4", "Etiopia", "+251111234567"), ("world4", "Fiji", "+6793212345"),
    ("world4", "Fransk Guyana", "+594594123456"), ("world4", "Fransk Polynesia", "+68940123456"),
    ("world4", "Grenada", "+14734401234"), ("world4", "Guam", "+16714771234"),
    ("world4", "Guinea", "+224301234567"), ("world4", "Guinea-Bissau", "+2454431234"),
    ("world4", "Guyana", "+5922251234"), ("world4", "Haiti", "+50922123456"),
    ("world4", "Honduras", "+50422123456"), ("world4", "Iran", "+982112345678"),
    ("world4", "Jamaica", "+18765551234"), ("world4", "Kambodsja", "+85523123456"),
    ("world4", "Kamerun", "+237222123456"), ("world4", "Kapp Verde", "+2382601234"),
    ("world4", "Kenya", "+254201234567"), ("world4", "Kiribati", "+68621234"),
    ("world4", "Komorene", "+2697731234"), ("world4", "Kongo", "+242222812345"),
    ("world4", "Kongo", "+243123456789"), ("world4", "Kuwait", "+96522123456"),
    ("world4", "Laos", "+85621212345"), ("world4", "Lesotho", "+26622312345"),
    ("world4", "Libanon", "+9611123456"), ("world4", "Liberia", "+231770123456"),
    ("world4", "Madagaskar", "+261202212345"), ("world4", "Maldivene", "+9603301234"),
    ("world4", "Mali", "+22320212345"), ("world4", "Marshalløyene", "+6926251234"),
    ("world4", "Mauritania", "+22245251234"), ("world4", "Mauritius", "+2302012345"),
    ("world4", "Mikronesia", "+6913201234"), ("world4", "Mongolia", "+97611123456"),
    ("world4", "Montserrat", "+16644911234"), ("world4", "Myanmar", "+9511234567"),
    ("world4", "Nauru", "+6745551234"), ("world4", "Nepal", "+97714123456"),
    ("world4", "Nicaragua", "+50522123456"), ("world4", "Niger", "+22720212345"),
    ("world4", "Nigeria", "+23412345678"), ("world4", "Niue", "+6834123"),
    ("world4", "Nord-Korea", "+85021234567"), ("world4", "Nord-Marianene", "+16702341234"),
    ("world4", "Ny-Caledonia", "+687271234"), ("world4", "Palau", "+6804881234"),
    ("world4", "Palestina", "+97022123456"), ("world4", "Panama", "+5072123456"),
    ("world4", "Papua Ny-Guinea", "+6753212345"), ("world4", "Paraguay", "+59521123456"),
    ("world4", "Qatar", "+97444123456"), ("world4", "Rwanda", "+250252123456"),
    ("world4", "Saint Kitts og Nevis", "+18694651234"), ("world4", "Saint Lucia", "+17584521234"),
    ("world4", "Saint Vincent og Grenadinene", "+17844561234"), ("world4", "Salomonøyene", "+67721234"),
    ("world4", "Samoa", "+68521234"), ("world4", "Sao Tome og Principe", "+2392221234"),
    ("world4", "Senegal", "+221338212345"), ("world4", "Seychellene", "+2484321234"),
    ("world4", "Sierra Leone", "+23222212345"), ("world4", "Sint Maarten (Nederland)", "+17215421234"),
    ("world4", "Somalia", "+2521123456"), ("world4", "Sudan", "+249183123456"),
    ("world4", "Suriname", "+597421234"), ("world4", "Syria", "+963112345678"),
    ("world4", "Sør-Sudan", "+211912345678"), ("world4", "Tahitri", "+68940412345"),
    ("world4", "Tajikistan", "+992372123456"), ("world4", "Tanzania", "+255222123456"),
    ("world4", "Togo", "+22822212345"), ("world4", "Tokelau", "+6902123"),
    ("world4", "Tonga", "+67621234"), ("world4", "Trinidad og Tobago", "+18686231234"),
    ("world4", "Turkmenistan", "+99312123456"), ("world4", "Turks og Caicosøyene", "+16499461234"),
    ("world4", "Tuvalu", "+68820123"), ("world4", "Uruguay", "+59821234567"),
    ("world4", "Usbekistan", "+998712345678"), ("world4", "Vanuatu", "+67822123"),
    ("world4", "Vietnam", "+842412345678"), ("world4", "Wallis- og Futunaøyene", "+681721234"),
    ("world4", "Øst-Timor", "+6703312345"), ("world4", "Amerikansk Samoa", "+16846331234"),
    # "Øvrige land som ikke er nevnt": countries in no group, e.g. Switzerland, the Faroes, Serbia.
    ("world4", "(øvrige) Sveits", "+41441234567"), ("world4", "(øvrige) Færøyene", "+298123456"),
    ("world4", "(øvrige) Serbia", "+381111234567"),
]


def nok_to_ore(text: str) -> Decimal:
    """'0,59' → 59, '8,-' → 800, '12,9' → 1290 (as the price list prints NOK)."""
    return Decimal(text.replace(",-", "").replace(",", ".")) * 100


def expected(start: str, per_min: str, seconds: int) -> int:
    exact = nok_to_ore(start) + nok_to_ore(per_min) * seconds / 60
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


@pytest.fixture(scope="module")
def rater() -> Rater:
    [path] = bundled_tariff_paths()
    return Rater(load_tariff(path))


@pytest.mark.parametrize(("row", "start", "per_min", "zone", "number"), INTERNATIONAL, ids=[r[0] for r in INTERNATIONAL])
@pytest.mark.parametrize("kind", ["private", "business"])
def test_international_zone_rows(rater: Rater, row: str, start: str, per_min: str, zone: str, number: str, kind: str) -> None:
    for seconds in (1, 60, 61):
        got = rater.rate(number, seconds, kind)
        assert got is not None and got.zone == zone, (row, number)
        assert got.price_ore == expected(start, per_min, seconds), (row, seconds)


@pytest.mark.parametrize(("row", "start", "per_min", "zone", "numbers"), SPECIAL, ids=[r[0] for r in SPECIAL])
def test_special_number_rows(rater: Rater, row: str, start: str, per_min: str, zone: str, numbers: list[str]) -> None:
    for number in numbers:
        for kind in ("private", "business"):
            for seconds in (1, 60, 61):
                got = rater.rate(number, seconds, kind)
                assert got is not None and got.zone == zone, (row, number)
                assert got.price_ore == expected(start, per_min, seconds), (row, number, seconds)


@pytest.mark.parametrize(("zone", "country", "number"), COUNTRIES, ids=[f"{c}-{n}" for _z, c, n in COUNTRIES])
def test_each_listed_country_is_in_its_zone(rater: Rater, zone: str, country: str, number: str) -> None:
    got = rater.rate(number, 61)
    assert got is not None and got.zone == zone, country


def test_the_list_above_names_every_country_of_the_price_list(rater: Rater) -> None:
    named = {c for _z, c, _n in COUNTRIES}
    for zone in rater.tariff.zones:
        for country in zone.countries:
            assert country in named, f"{country} ({zone.id}) has no test number"


def test_hand_checked_prices(rater: Rater) -> None:
    """A few by hand: Nordic 0.59 + 1.79/min; 61 s = 0.59 + 1.8198 → 2.41 NOK (1.8198 rounded up)."""
    assert [rater.rate("+46812345678", s).price_ore for s in (1, 60, 61)] == [62, 238, 241]  # type: ignore[union-attr]
    assert [rater.rate("1881", s).price_ore for s in (1, 60, 61)] == [1031, 2853, 2884]  # type: ignore[union-attr]
    assert rater.rate("+46812345678", 0).price_ore == 0  # type: ignore[union-attr]  # not answered


NATIONAL = [
    # number, zone, private (start, per min), business (start, per min)
    ("+4722334455", "norway_fixed", ("0,-", "0,-"), ("0,-", "0,15")),
    ("+4755123456", "norway_fixed", ("0,-", "0,-"), ("0,-", "0,15")),
    ("+4773123456", "norway_fixed", ("0,-", "0,-"), ("0,-", "0,15")),
    ("+4791234567", "norway_mobile", ("0,-", "0,-"), ("0,-", "0,15")),
    ("+4741234567", "norway_mobile", ("0,-", "0,-"), ("0,-", "0,15")),
    ("+47581234567890", "norway_mobile", ("0,-", "0,-"), ("0,-", "0,15")),
]


@pytest.mark.parametrize(("number", "zone", "private", "business"), NATIONAL, ids=[r[0] for r in NATIONAL])
def test_norwegian_calls_private_included_business_per_minute(
    rater: Rater, number: str, zone: str, private: tuple[str, str], business: tuple[str, str]
) -> None:
    for kind, (start, per_min) in (("private", private), ("business", business)):
        for seconds in (1, 60, 61):
            got = rater.rate(number, seconds, kind)
            assert got is not None and got.zone == zone
            assert got.price_ore == expected(start, per_min, seconds), (kind, seconds)


def test_emergency_is_free_even_if_a_tariff_prices_it(rater: Rater) -> None:
    got = rater.rate("+4799999999", 600, number_class="emergency")
    assert got is not None and (got.zone, got.price_ore) == ("emergency", 0)


def test_longest_prefix_wins_inside_nanp_and_plus_7(rater: Rater) -> None:
    assert rater.rate("+18095551234", 60).zone == "world4"  # type: ignore[union-attr]  # Dominican Rep.
    assert rater.rate("+17875551234", 60).zone == "world3"  # type: ignore[union-attr]  # Puerto Rico
    assert rater.rate("+18005551234", 60).zone == "usa_canada"  # type: ignore[union-attr]  # US toll-free
    assert rater.rate("+74951234567", 60).zone == "world1"  # type: ignore[union-attr]  # Moscow
    assert rater.rate("+77272123456", 60).zone == "world3"  # type: ignore[union-attr]  # Almaty


def test_every_country_in_the_mapping_is_e164_digits() -> None:
    for name, prefixes in countries().items():
        assert prefixes, name
        for p in prefixes:
            assert p.isascii() and p.isdigit() and p[0] != "0" and len(p) <= 7, (name, p)


def test_the_mapping_agrees_with_well_known_country_codes() -> None:
    known = {"Sverige": "46", "Danmark": "45", "Finland": "358", "Island": "354", "Tyskland": "49",
             "Storbritannia": "44", "USA": "1", "Russland": "7", "Japan": "81", "Kina": "86",
             "India": "91", "Brasil": "55", "Egypt": "20", "Australia": "61", "Sør-Afrika": "27"}
    table = countries()
    for name, code in known.items():
        assert code in table[name], name


def test_unlisted_special_numbers_use_the_operators_documented_fallback(rater: Rater) -> None:
    for number, zone in (("+4782045123", "premium_other"), ("+4782941234", "premium_other"),
                         ("+4785012345", "special_other"), ("1850", "special_other")):
        got = rater.rate(number, 60)
        assert got is not None and got.zone == zone, number
        assert rater.tariff.zone(zone).assumed
