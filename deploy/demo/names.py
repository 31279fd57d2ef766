"""Word lists for synthetic people, places and organisations.

Generic given and family names widely used across the Caribbean and the English-, French-
and Spanish-speaking world, written for this generator. No list holds a real person's record:
every combination of name, date of birth, identifier and address is drawn at random. All
entries encode in cp1252 (one agency's export is cp1252) and are single words, so a joined
"Given Middle Family" cell splits back unambiguously.
"""

from __future__ import annotations

# Names by origin; a person's citizenship picks the origin (see population.ORIGIN_BY_COUNTRY).
FEMALE_GIVEN: dict[str, tuple[str, ...]] = {
    "english": (
        "Abigail", "Alicia", "Andrea", "Angela", "Ann", "Annette", "Audrey", "Barbara",
        "Beverley", "Brianna", "Camille", "Carlene", "Carol", "Charlene", "Chantelle",
        "Christine", "Claudette", "Deborah", "Denise", "Diana", "Donna", "Dorothy", "Elaine",
        "Elizabeth", "Empress", "Ethlyn", "Faith", "Gabrielle", "Georgia", "Gloria", "Grace",
        "Hazel", "Heather", "Hope", "Imani", "Janet", "Jacqueline", "Jennifer", "Jodi-Ann",
        "Joy", "Judith", "Julie", "Kadian", "Karen", "Katherine", "Kerry-Ann", "Kimberly",
        "Latoya", "Lorna", "Lisa", "Marcia", "Margaret", "Marie", "Marsha", "Maxine",
        "Melissa", "Michelle", "Monique", "Natalie", "Natasha", "Nicole", "Olivia", "Pamela",
        "Patricia", "Paulette", "Pearl", "Rebecca", "Rochelle", "Rose", "Samantha",
        "Sandra", "Sasha", "Sharon", "Shanice", "Sheryl", "Simone", "Sophia", "Stacy-Ann",
        "Susan", "Tamara", "Tanisha", "Theresa", "Tiffany", "Valerie", "Veronica",
        "Victoria", "Yvonne", "Zoe",
    ),
    "french": (
        "Chantal", "Clémence", "Fabienne", "Guerline", "Josette", "Lucienne", "Magalie",
        "Marjorie", "Nadège", "Rose-Marie", "Sabine", "Stéphanie", "Widline", "Zoë",
    ),
    "spanish": (
        "Alejandra", "Ana", "Carmen", "Daniela", "Gabriela", "Isabel", "Lucía", "María",
        "Mariela", "Paola", "Rosa", "Yessenia", "Yolanda",
    ),
}

MALE_GIVEN: dict[str, tuple[str, ...]] = {
    "english": (
        "Adrian", "Alexander", "Andre", "Andrew", "Anthony", "Barrington", "Benjamin",
        "Brian", "Carlton", "Charles", "Christopher", "Clive", "Conroy", "Courtney", "Damion",
        "Daniel", "David", "Delroy", "Dennis", "Desmond", "Dwayne", "Edward", "Errol",
        "Everton", "Fitzroy", "Gabriel", "Garfield", "Gary", "Glenroy", "Gregory", "Horace",
        "Ian", "Jason", "Jermaine", "Jonathan", "Joseph", "Junior", "Kemar", "Kenneth",
        "Kevin", "Kirk", "Leonard", "Leroy", "Lloyd", "Marlon", "Matthew", "Michael",
        "Mark", "Nathaniel", "Neville", "Nicholas", "Noel", "Omar", "Oliver", "Orville",
        "Patrick", "Paul", "Peter", "Raymond", "Richard", "Ricardo", "Robert", "Ronald",
        "Roy", "Rohan", "Samuel", "Sean", "Shane", "Stephen", "Steven", "Tarik", "Thomas",
        "Timothy", "Trevor", "Tyrone", "Wayne", "William", "Winston",
    ),
    "french": (
        "Didier", "Emmanuel", "Fritz", "Jean", "Jean-Claude", "Jean-Pierre", "Jérôme",
        "Jocelyn", "Lionel", "Louis", "Pierre", "Rénald", "Stanley", "Wilner",
    ),
    "spanish": (
        "Alejandro", "Andrés", "Carlos", "Diego", "Eduardo", "Fernando", "Jorge", "José",
        "Juan", "Luis", "Miguel", "Rafael", "Santiago",
    ),
}

FAMILY: dict[str, tuple[str, ...]] = {
    "english": (
        "Allen", "Anderson", "Bailey", "Barrett", "Beckford", "Bennett", "Blake", "Bogle",
        "Bolt", "Bowen", "Brown", "Bryan", "Buchanan", "Burke", "Campbell", "Chambers",
        "Chin", "Clarke", "Coke", "Cole", "Cooper", "Daley", "Davis", "Dixon", "Douglas",
        "Duncan", "Dunkley", "Edwards", "Ellis", "Evans", "Ferguson", "Fletcher", "Forbes",
        "Francis", "Fraser", "Gayle", "Gordon", "Graham", "Grant", "Gray", "Green", "Hall",
        "Hamilton", "Harris", "Harrison", "Henry", "Hewitt", "Hinds", "Hutchinson",
        "Jackson", "James", "Johnson", "Jones", "Kelly", "Kerr", "Lawrence", "Lee", "Lewis",
        "Lindo", "Lyn", "Malcolm", "Marshall", "Martin", "McDonald", "McFarlane",
        "McKenzie", "McLean", "Miller", "Mitchell", "Morgan", "Morris", "Murray", "Nelson",
        "Nembhard", "Nugent", "Palmer", "Parkes", "Patterson", "Pinnock", "Powell",
        "Ramsay", "Reid", "Richards", "Riley", "Roberts", "Robinson", "Rose", "Russell",
        "Samuels", "Scott", "Shaw", "Simpson", "Sinclair", "Singh", "Smith", "Spence",
        "Stewart", "Taylor", "Thomas", "Thompson", "Tomlinson", "Walker", "Wallace",
        "Walters", "Watson", "White", "Whyte", "Williams", "Wilson", "Wong", "Wright",
        "Young", "Bartley", "Brooks", "Christie", "Dawkins", "Foster", "Haughton", "Ingram",
        "Lindsay", "Mullings", "Ricketts", "Stephenson", "Wedderburn",
    ),
    "french": (
        "Alexis", "Augustin", "Baptiste", "Charles", "Delva", "Désir", "Dorval", "Duval",
        "Étienne", "Fleurant", "Joseph", "Jean-Baptiste", "Laguerre", "Louis", "Ménard",
        "Michel", "Pierre", "Toussaint", "Vincent",
    ),
    "spanish": (
        "Castillo", "Díaz", "Fernández", "García", "Gómez", "González", "Hernández",
        "López", "Martínez", "Morales", "Muñoz", "Núñez", "Pérez", "Ramírez", "Rodríguez",
        "Sánchez", "Torres",
    ),
}

# Short forms an agency may record instead of the full given name.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Abigail": ("Abby",),
    "Alexander": ("Alex",),
    "Alejandro": ("Alex",),
    "Andrew": ("Andy", "Drew"),
    "Anthony": ("Tony",),
    "Barbara": ("Babs",),
    "Benjamin": ("Ben",),
    "Charles": ("Charlie",),
    "Christopher": ("Chris",),
    "Christine": ("Chris",),
    "Daniel": ("Danny", "Dan"),
    "Deborah": ("Debbie",),
    "Dorothy": ("Dot",),
    "Edward": ("Eddie", "Ed"),
    "Elizabeth": ("Liz", "Beth"),
    "Gabrielle": ("Gabby",),
    "Gregory": ("Greg",),
    "Jacqueline": ("Jackie",),
    "Jennifer": ("Jenny", "Jen"),
    "Jonathan": ("Jon",),
    "José": ("Pepe",),
    "Joseph": ("Joe",),
    "Katherine": ("Kate", "Kathy"),
    "Kenneth": ("Ken",),
    "Kimberly": ("Kim",),
    "Leonard": ("Len",),
    "Margaret": ("Maggie", "Peggy"),
    "Matthew": ("Matt",),
    "Michael": ("Mike",),
    "Natalie": ("Nat",),
    "Nathaniel": ("Nate",),
    "Nicholas": ("Nick",),
    "Oliver": ("Ollie",),
    "Pamela": ("Pam",),
    "Patricia": ("Pat", "Patty"),
    "Patrick": ("Pat",),
    "Raymond": ("Ray",),
    "Rebecca": ("Becky",),
    "Richard": ("Rick", "Richie"),
    "Robert": ("Bob", "Rob"),
    "Ronald": ("Ron",),
    "Samantha": ("Sam",),
    "Samuel": ("Sam",),
    "Stephen": ("Steve",),
    "Susan": ("Sue",),
    "Theresa": ("Tessa",),
    "Thomas": ("Tom", "Tommy"),
    "Timothy": ("Tim",),
    "Valerie": ("Val",),
    "Victoria": ("Vicky",),
    "William": ("Bill", "Will"),
}

STREETS: tuple[str, ...] = (
    "Hope Road", "Old Hope Road", "Spanish Town Road", "Constant Spring Road", "Red Hills Road",
    "Washington Boulevard", "Hagley Park Road", "Molynes Road", "Mountain View Avenue",
    "Windward Road", "Barbican Road", "Lyndhurst Road", "Waltham Park Road", "Main Street",
    "Church Street", "King Street", "Market Street", "Union Street", "Barnett Street",
    "Gloucester Avenue", "Orange Street", "Sligoville Road", "Old Harbour Road",
    "Bay Road", "Queens Road", "Top Road", "Bottom Road", "Hospital Lane", "School Lane",
    "Mango Walk", "Breadnut Lane", "Ackee Drive", "Hibiscus Way", "Palm Avenue",
    "Cedar Close", "Mahogany Drive", "Sunset Avenue", "Harbour View Drive", "Riverside Drive",
    "Cottage Road",
)

ADDRESS_PREFIXES: tuple[str, ...] = ("", "", "", "Lot ", "Apt 2, ", "Shop 4, ", "")

ORGANISATION_WORDS: tuple[str, ...] = (
    "Blue Mountain", "Caribbean", "Island", "Coastal", "Sunrise", "Harbour", "Valley",
    "Green Gold", "Palm", "Royal", "Northcoast", "Southside", "Hilltop", "Riverside",
    "Tropical", "Emerald", "Seaview", "Golden Sands", "Cane River", "Twin Palms",
)
ORGANISATION_KINDS: tuple[tuple[str, str], ...] = (
    # (business noun, industry)
    ("Agro", "agriculture"), ("Farms", "agriculture"), ("Fisheries", "fishing"),
    ("Construction", "construction"), ("Builders", "construction"),
    ("Hospitality", "hospitality"), ("Guest House", "hospitality"), ("Resort", "hospitality"),
    ("Entertainment", "entertainment"), ("Night Club", "entertainment"),
    ("Cleaning Services", "domestic services"), ("Staffing", "recruitment"),
    ("Recruitment", "recruitment"), ("Logistics", "transport"), ("Haulage", "transport"),
    ("Traders", "retail"), ("Wholesale", "retail"), ("Garments", "manufacturing"),
)
ORGANISATION_SUFFIXES: tuple[str, ...] = ("Ltd", "Limited", "Co. Ltd", "Enterprises", "")

SITE_KINDS: tuple[str, ...] = (
    "farm", "guest house", "bar", "construction site", "boarding house", "warehouse",
    "fishing camp", "nightclub", "private residence", "roadside shop",
)
