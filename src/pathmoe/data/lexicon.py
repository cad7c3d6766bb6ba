"""Word lists of the built-in corpus, one per token category of the paper's Table 9.

The corpus generator draws its slot fillers from these lists so that every Table 9 category
occurs often and in consistent syntactic roles, giving the path-specialisation analysis (Fig 5)
something to find. The analysis does not read these lists: it labels tokens with its own
classifier, `pathmoe.analysis.categories.classify` (the paper's word lists and suffix rules, first
match wins), and the two disagree on some words: 79 of the 577 words here get another label there,
e.g. 43 of the 80 cast first names (`Mark`, `Oliver`) classify as proper_nouns, `engineer` as an
agent noun, several adjectives as other, and manner vs other -ly adverbs swap. Fig 5 therefore
measures the classifier's categories, which only partly coincide with the ones planted here.
Lists are kept short (a few dozen words each) so a tiny model trained for minutes can learn them.
"""

from __future__ import annotations

MALE_NAMES = (
    "John Richard James Robert Michael David Thomas Daniel Peter Paul Mark George Henry Edward "
    "Samuel Arthur Oliver Lucas Martin Simon Victor Hugo Felix Oscar Leon Adam Noah Ethan Isaac "
    "Walter Frank Carl Ivan Omar Rafael Marco Andre Tomas Kenji Ravi"
).split()
FEMALE_NAMES = (
    "Mary Elizabeth Andrea Oprah Anna Laura Sarah Emma Julia Clara Helen Alice Grace Sophie Lucy "
    "Maria Nora Ruth Diana Irene Olivia Hannah Rosa Vera Nina Eva Lena Mia Chloe Amelia Esther "
    "Paula Monica Yuki Priya Leila Ingrid Beatrice Camille Fatima"
).split()
SURNAMES = (
    "Hale Carter Brooks Morgan Fisher Hayes Reed Bennett Porter Walsh Dunn Harper Ellis Grant "
    "Lowell Price Shaw Wells Parker Foster Kim Tanaka Rossi Novak Silva Schmidt Dubois Khan Lopez "
    "Nakamura Larsen Moreau Costa Petrov Okafor Singh Adams Barnes Cole Drake Ford Gray Hunt Kerr "
    "Lane Marsh Nash Quinn Rhodes Stone Turner Vance Webb Young Ortiz Becker Jensen Weber Russo "
    "Abbott Bishop Chandler Dawson Fletcher Garner Holt Irving Keller Lambert Mercer Norris Osborne "
    "Pratt Ramsey Sutton Thornton Upton Whitman Yates Burke Hollis Finch"
).split()
TITLES_ROLES = (
    "secretary minister commander winner professor CEO mayor director chairman president "
    "governor senator captain judge doctor engineer architect editor manager officer scientist "
    "teacher ambassador coach chief historian lawyer nurse pilot banker chancellor"
).split()
SPEECH_VERBS = (
    "said explained told asked claimed announced replied added noted insisted suggested "
    "admitted argued warned reported stated promised declared"
).split()
ADVERBS_DISCOURSE = (
    "especially actually particularly however therefore indeed moreover meanwhile nevertheless "
    "instead furthermore perhaps certainly clearly obviously"
).split()
ADVERBS_MANNER = (
    "quickly carefully successfully directly properly slowly quietly loudly gently firmly "
    "calmly openly eagerly patiently warmly"
).split()
ADVERBS_TIME = (
    "now today recently always sometimes currently soon often later yesterday already still "
    "never usually again"
).split()
ADVERBS_OTHER = (
    "nearly simply largely mostly merely fairly highly deeply widely truly hardly rarely "
    "barely mainly entirely"
).split()
NATIONALITIES = (
    "American British Chinese European Japanese French German Italian Spanish Canadian "
    "Indian Brazilian Mexican Russian Swedish Dutch Korean Irish Polish Egyptian"
).split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = (
    "January February March April May June July August September October November December"
).split()
TEMPORAL_WORDS = WEEKDAYS + MONTHS + (
    "morning evening afternoon night year summer winter spring autumn week month season decade "
    "weekend"
).split()
PREPOSITIONS = "in on at to for with by from about into near after before during across".split()
CONJUNCTIONS = "and or but because although while if so yet unless".split()
DETERMINERS = "the a an this that some every each these those".split()
PRONOUNS = "he she they it who someone anybody we you everyone nobody".split()
QUANTIFIERS = "all many most million percent several few thousand dozen both".split()
COMMON_VERBS = "is was have had go make take know get see come give find think went made".split()
ING_VERBS = (
    "running building working planning opening growing helping teaching writing reading "
    "moving waiting travelling visiting studying singing painting cooking"
).split()
ED_VERBS = (
    "created opened finished started visited helped answered decided returned changed "
    "planned moved worked joined reached showed arrived followed"
).split()
ADJECTIVES = (
    "good new important political economic public old small large young local national "
    "strong bright quiet busy famous simple difficult modern ancient green happy"
).split()
PLACES = (
    "Alden Riverton Brookfield Eastwick Marlow Halden Westport Ashby Corvale Dunmore Fairhaven "
    "Glenrock Harwick Kingsley Lakemont Millbrook Northgate Oakridge Pinecrest Redwater Stonebridge "
    "Thornbury Valemont Whitby Yarrow Elmsworth Greyhaven Ironwood Larkspur Moorfield"
).split()
ORGANISATIONS = (
    "Council Institute Foundation Company Society Museum Academy Gazette Bank Hospital Library "
    "Orchestra Agency University Union"
).split()
ABSTRACT_NOUNS = (
    "construction decision celebration exhibition competition renovation investigation "
    "collection election tradition happiness kindness darkness fairness agreement development "
    "government movement achievement announcement improvement treatment tension excursion"
).split()
AGENT_NOUNS = (
    "player actor writer farmer builder teacher worker visitor painter singer driver reader "
    "founder sailor baker gardener inventor collector"
).split()
OBJECT_NOUNS = (
    "bridge school river market library road garden museum hospital station farm harbour "
    "theatre tower park mill castle square lighthouse factory stadium orchard chapel bakery"
).split()
ORDINALS = [f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}" for n in range(1, 32)]
PUNCTUATION = list(".,;:!?\"'()-")

# category -> word list, in the order of the paper's Table 9 (plus punctuation, which the paper
# analyses in Fig 5 though Table 9 omits it). Pattern categories list the words the generator
# uses for them; numbers are drawn at random and listed here only as examples.
LEXICON: dict[str, list[str]] = {
    "person_names": MALE_NAMES + FEMALE_NAMES,
    "titles_roles": list(TITLES_ROLES),
    "speech_verbs": list(SPEECH_VERBS),
    "adverbs_discourse": list(ADVERBS_DISCOURSE),
    "adverbs_manner": list(ADVERBS_MANNER),
    "adverbs_time": list(ADVERBS_TIME),
    "adverbs_other": list(ADVERBS_OTHER),
    "nationalities": list(NATIONALITIES),
    "temporal_words": list(TEMPORAL_WORDS),
    "prepositions": list(PREPOSITIONS),
    "conjunctions": list(CONJUNCTIONS),
    "determiners": list(DETERMINERS),
    "pronouns": list(PRONOUNS),
    "quantifiers": list(QUANTIFIERS),
    "common_verbs": list(COMMON_VERBS),
    "verbs": ING_VERBS + ED_VERBS,
    "adjectives": list(ADJECTIVES),
    "proper_nouns": SURNAMES + PLACES,
    "abstract_nouns": list(ABSTRACT_NOUNS),
    "agent_nouns": list(AGENT_NOUNS),
    "numbers": ["1", "2", "7", "12", "100", "250", "1999", "2024"],
    "ordinals": list(ORDINALS),
    "punctuation": list(PUNCTUATION),
}
