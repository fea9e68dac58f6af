"""A seeded generator of a realistic grocery marketplace: catalogue, search log and graded judgements.

:func:`generate_demo_store` writes three files in the formats of :mod:`towersearch.data.schema`:

``catalog.csv``
    Products drawn from a hand-written taxonomy of 17 departments, about 60 aisles and 300+ product types. Each
    type has a canonical name, colloquial names and abbreviations ("pop", "mac n cheese", "oj", "tp",
    "garbanzo beans", "courgette"), plausible sizes, the dietary attributes that can apply (organic, gluten free,
    vegan, kosher, ...), flavour/scent/variety words and alternative product-name heads, so that a product's name
    does not always contain its type ("Shells & Cheddar" for macaroni and cheese). Brands are invented (a few
    hundred, each tied to one to four related departments, with specialty aisles) plus four store brands that span
    many departments. Confusable types that share words but are different intents sit in different aisles:
    tortillas / tortilla chips, peanut butter / peanuts / butter, ice cream / ice cream cones / ice, coffee /
    coffee creamer, chicken breast / chicken broth / chicken nuggets, apple / apple juice / apple sauce,
    rice / rice cakes, lemon / lemonade. About ``cold_start_fraction`` of the products are new: created in the
    last days of the period, after the log ends, with no events at all; some of them come from brands that are
    entirely new.

``log.csv``
    Simulated searches. Each search picks a query intent (a product type, a generic word such as "milk" or
    "chips", a brand, brand + type, attribute + type, variant + type, or one of a few things the store does not
    sell) with Zipf popularity over intent rank, then a surface form: the canonical text most often, else a
    synonym or abbreviation, a misspelling (curated ones such as "avacado", "bananna", "brocoli", or a random
    single edit of a long word), sometimes extra words ("chips for party") or swapped word order. The simulated
    store answers with ``page_size`` products: mostly relevant ones (fewer when the query is a synonym or
    misspelled, as a lexical engine would), some of the same aisle, some lexically similar but wrong (names
    sharing a word with the query) and some random, ranked by a noisy score. The shopper views the top four
    positions and scrolls further with probability 1/2 per extra position: ``impression`` rows are written
    for the viewed positions only (4 to ``page_size``, about 5 on average). ``click`` probability is an
    examination term that decays with position (1 / position^0.7) times an attractiveness that depends on the
    true relevance grade, including rare noise clicks on irrelevant products; ``add_to_cart`` follows a click,
    mostly on truly relevant products, and ``purchase`` follows a cart at checkout at the end of the session.
    Sessions hold one to several searches with monotone ISO-8601 timestamps; a shopper whose misspelled or
    colloquial query got no click often retypes it canonically. ``count`` is always 1. A share of the intents
    (``heldout_fraction``, stratified over popularity, plus every intent that only cold-start products answer)
    is held out: none of their surface forms appears in the log.

``judgements.csv``
    Graded relevance for the held-out intents only: the canonical text and, for about a third of the intents, a
    colloquial or misspelled form as a separate query. Grades: 3 = right type and every brand / attribute /
    variant asked for; 2 = right type but a different brand, attribute or variant (a substitute); 1 = related
    (same aisle, or an explicit complement such as salsa for tortilla chips); 0 = a sample of irrelevant
    products, the confusable near-misses (tortilla chips for "tortillas") first. Every grade-3 product is judged,
    grades 2, 1 and 0 are sampled. Every judged query has at least one grade-3 product, and no judged query
    appears in the log (after :func:`~towersearch.data.schema.normalize_query`).

Known simplifications:
    Relevance is defined by the taxonomy (type, aisle, brand, attribute, variant), not by people; cross-aisle
    substitutes are graded 0 unless listed as complements. Shoppers have no personal preferences and sessions do
    not refine queries beyond retyping; the simulated store's ranking does not learn from the log; prices,
    stock-outs, promotions and seasonality (other than the hour of day) are not modelled; products created
    during the log period are all cold-start and the log ends before they are created; a handful of showcase
    searches ("mac and cheese", "mac n cheese", "macaroni and cheese", "macaroni & cheese", "avacado",
    "bananna", "pop", "oj", "tp", ...) are always included once so that features relying on them have
    something to find, and their intents are never held out.
"""

from __future__ import annotations

import bisect
import calendar
import math
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from towersearch.data.catalog import write_catalog
from towersearch.data.judgements import write_judgements
from towersearch.data.log import write_log
from towersearch.data.schema import EVENTS, LogEvent, Product, normalize_query, split_category
from towersearch.errors import ConfigError

__all__ = ["DemoConfig", "DemoStore", "ProductType", "build_demo_store", "generate_demo_store", "product_types"]


@dataclass
class DemoConfig:
    """Settings of the demo store generator; every value is checked by :meth:`validate`."""

    n_products: int = field(default=5000, metadata={"help": "Products in the catalogue (100 to 2,000,000)."})
    seed: int = field(default=0, metadata={"help": "Random seed: the same seed and settings give identical files."})
    n_searches: int = field(
        default=10_000,
        metadata={"help": "Searches to simulate (at least 100); each writes about 7 log events on average."},
    )
    cold_start_fraction: float = field(
        default=0.05,
        metadata={"help": "Share of products that are new (created after the log ends, no events); 0 to 0.5."},
    )
    heldout_fraction: float = field(
        default=0.12,
        metadata={"help": "Share of query intents held out of the log and judged instead; above 0, at most 0.5."},
    )
    days: int = field(default=60, metadata={"help": "Length of the period in days (14 to 3650)."})
    start_date: str = field(default="2024-03-01", metadata={"help": "First day of the period, ISO format."})
    page_size: int = field(default=10, metadata={"help": "Products the simulated store shows per search (5 to 50)."})
    synonym_rate: float = field(
        default=0.35, metadata={"help": "Share of searches typed with a synonym, when the intent has one (0 to 0.9)."}
    )
    misspelling_rate: float = field(
        default=0.08, metadata={"help": "Share of searches typed with a misspelling (0 to 0.5)."}
    )
    zipf_exponent: float = field(
        default=1.0, metadata={"help": "Exponent of the Zipf law of intent popularity over rank (0.5 to 2)."}
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~towersearch.errors.ConfigError` naming the first value that is not allowed."""
        _check_int("n_products", self.n_products, 100, 2_000_000)
        _check_int("seed", self.seed, -(2**63), 2**63 - 1)
        _check_int("n_searches", self.n_searches, 100, 50_000_000)
        _check_float("cold_start_fraction", self.cold_start_fraction, 0.0, 0.5)
        _check_float("heldout_fraction", self.heldout_fraction, 0.0, 0.5)
        if self.heldout_fraction == 0:
            raise ConfigError("heldout_fraction must be above 0: the judgements are made for held-out intents")
        _check_int("days", self.days, 14, 3650)
        _check_int("page_size", self.page_size, 5, 50)
        _check_float("synonym_rate", self.synonym_rate, 0.0, 0.9)
        _check_float("misspelling_rate", self.misspelling_rate, 0.0, 0.5)
        _check_float("zipf_exponent", self.zipf_exponent, 0.5, 2.0)
        try:
            date.fromisoformat(str(self.start_date))
        except ValueError:
            raise ConfigError(f"start_date must be an ISO date such as 2024-03-01; got {self.start_date!r}") from None


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:,} and {high:,}; got {value:,}")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ConfigError(f"{name} must be a number; got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}; got {value}")


# --------------------------------------------------------------------------------------------------------------
# Taxonomy.
# "@ department > aisle | sizes | dietary attributes | what it is used for" starts an aisle; each following line is
# a product type: "[*]name | generic word | synonyms | variants | name heads | sizes | dietary" (lists separated by
# commas; "*" marks a staple, which shoppers search for more often; empty sizes/dietary take the aisle's, "-" means
# none; a line starting with "+" continues the one before). A generic word shared by two or more types ("milk",
# "chips") is a query intent of its own.
_TAXONOMY = """
@ produce > fruit | each, 1 lb, 2 lb bag, 3 lb bag | organic, non-gmo | snacking, smoothies and lunch boxes
*banana | | bananas, banana bunch | | Bananas, Bunch of Bananas | each, 1 bunch, 2 lb, 3 lb
*apple | | apples | gala, honeycrisp, fuji, granny smith, pink lady | Apples | each, 3 lb bag, 5 lb bag, 2 lb
*avocado | | avocados, hass avocado, hass avocados | hass | Avocados, Ripe Hass Avocados | each, 4 ct, 6 ct, 3 lb
*lemon | | lemons | meyer | Lemons | each, 2 lb bag, 1 lb
lime | | limes | key | Limes, Persian Limes | each, 2 lb bag, 1 lb
orange | | oranges | navel, cara cara, blood | Oranges, Juicy Oranges | each, 4 lb bag, 3 lb bag
*strawberries | berries | strawberry | | Strawberries, Sweet Strawberries | 1 lb, 2 lb, 16 oz
blueberries | berries | blueberry | | Blueberries, Fresh Blueberries | 6 oz, 11 oz, 18 oz, 1 pt
raspberries | berries | raspberry | golden | Raspberries, Red Raspberries | 6 oz, 12 oz
grapes | | grape, seedless grapes | red, green, cotton candy | Seedless Grapes | 2 lb, 3 lb, 1 lb
pineapple | | pineapples | golden | Whole Pineapple, Pineapple Chunks | each, 16 oz
mango | | mangoes, mangos | ataulfo, honey | Mangoes | each, 4 ct
watermelon | | | seedless, mini | Seedless Watermelon | each, half
peach | | peaches | white, yellow | Peaches, Ripe Peaches | each, 2 lb bag
pear | | pears | bartlett, bosc, anjou | Pears | each, 3 lb bag
@ produce > vegetables | each, 1 lb, 2 lb bag, 3 ct | organic, non-gmo | salads, roasting and weeknight dinners
*tomato | | tomatoes, roma tomatoes | roma, cherry, heirloom, vine ripe | Tomatoes on the Vine, Roma Tomatoes
*onion | | onions | yellow, red, white, sweet | Onions | each, 3 lb bag, 2 lb bag
broccoli | | broccoli crowns, broccoli florets | | Broccoli Crowns, Broccoli Florets | each, 12 oz, 1 lb
carrots | | carrot, baby carrots | baby, rainbow | Baby Carrots, Carrots | 1 lb, 2 lb, 5 lb
zucchini | squash | courgette, courgettes, zucchinis | | Zucchini Squash, Green Zucchini
*potato | | potatoes, spuds | russet, red, yukon gold | Russet Potatoes, Potatoes | each, 5 lb bag, 3 lb bag
garlic | | garlic bulb, garlic cloves | | Garlic Bulbs, Peeled Garlic | each, 3 ct, 6 oz
bell pepper | peppers | bell peppers, capsicum, sweet peppers | red, green, yellow, orange | Bell Peppers
cucumber | | cucumbers, cukes | english, mini | Cucumbers
spinach | greens | baby spinach | baby | Baby Spinach | 5 oz, 10 oz, 16 oz
romaine lettuce | | romaine, lettuce, romaine hearts | | Romaine Hearts | each, 3 ct
celery | | celery sticks | | Celery Hearts, Celery Stalks | each, 1 lb
mushrooms | | mushroom | white, baby bella, portobello | Sliced Mushrooms | 8 oz, 16 oz
sweet potato | | sweet potatoes, yam, yams | | Sweet Potatoes | each, 3 lb bag
cauliflower | | cauliflower florets | | Cauliflower Florets | each, 12 oz
kale | greens | curly kale | curly, lacinato | Kale Greens | 1 bunch, 10 oz
eggplant | | aubergine, eggplants | | Eggplant
green onions | | scallions, spring onions | | Scallions | 1 bunch
jalapeno | peppers | jalapenos, jalapeño | | Jalapeño Peppers
corn on the cob | | sweet corn, corn cob | yellow, bicolor | Sweet Corn on the Cob | each, 4 ct
salad mix | | bagged salad, spring mix, salad greens | spring, caesar, italian | Spring Mix, Salad Kit | 5 oz, 10 oz
@ produce > herbs | 1 bunch, 0.5 oz, 0.75 oz, 1 oz | organic | garnishes, sauces and marinades
cilantro | herbs | coriander, fresh coriander, fresh cilantro | | Cilantro Bunch
basil | herbs | fresh basil, sweet basil | | Sweet Basil
parsley | herbs | italian parsley, flat leaf parsley | curly, flat leaf | Italian Parsley
ginger | | ginger root, fresh ginger | | Ginger Root | each, 4 oz, 8 oz
mint | herbs | fresh mint, spearmint | | Fresh Mint
@ dairy eggs > milk | 1 gal, half gal, 1 qt, 64 fl oz | organic, kosher, lactose free | cereal, coffee and baking
*whole milk | milk | vitamin d milk, full fat milk | | Vitamin D Whole Milk, Whole Milk
*2% milk | milk | reduced fat milk, 2 percent milk | | 2% Reduced Fat Milk, Reduced Fat Milk
skim milk | milk | fat free milk, nonfat milk | | Fat Free Milk, Fat Free Skim Milk
oat milk | milk | oatmilk, oat beverage | original, vanilla, barista | Oat Beverage, Oatmilk |
+ | organic, vegan, gluten free
almond milk | milk | almondmilk | unsweetened, vanilla, original | Almondmilk | | organic, vegan, non-gmo
soy milk | milk | soymilk | unsweetened, vanilla, original | Soymilk | | organic, vegan, non-gmo
chocolate milk | milk | choc milk | | Chocolate Lowfat Milk, Chocolate Milk | | low fat, kosher
@ dairy eggs > eggs | 12 ct, 18 ct, 24 ct, 6 ct | organic, cage free, non-gmo | breakfast, baking and brunch
*eggs | | large eggs, dozen eggs, egg | large, extra large, brown | Grade A Large Eggs, Large Brown Eggs
egg whites | | liquid egg whites | | 100% Liquid Egg Whites | 16 oz, 32 oz
@ dairy eggs > butter | 16 oz, 8 oz, 4 sticks | organic, kosher, grass fed | baking, toast and cooking
*butter | | salted butter, unsalted butter, sweet cream butter | salted, unsalted | Sweet Cream Butter, Butter Sticks
margarine | | vegetable spread, butter spread | | Vegetable Oil Spread | 15 oz, 45 oz | vegan, kosher
@ dairy eggs > cheese | 8 oz, 16 oz, 6 oz, 12 oz | organic, kosher, keto, lactose free
+ | snacking, sandwiches and recipes
cheddar cheese | cheese | cheddar, sharp cheddar | sharp, mild, extra sharp | Cheddar Block, Shredded Cheddar
mozzarella | cheese | mozzarella cheese, mozz, shredded mozzarella | low moisture, fresh | Shredded Mozzarella
parmesan | cheese | parmesan cheese, parm, grated parmesan | grated, shaved | Grated Parmesan
swiss cheese | cheese | swiss, sliced swiss | | Sliced Swiss Cheese
string cheese | cheese | cheese sticks | | Mozzarella String Cheese | 12 ct, 24 ct
feta | cheese | feta cheese | crumbled | Crumbled Feta
cream cheese | | cream cheese spread | original, whipped, chive | Original Cream Cheese, Cream Cheese Spread
cottage cheese | | | small curd, large curd | Small Curd Cottage Cheese | 16 oz, 24 oz
@ dairy eggs > yogurt | 5.3 oz, 32 oz, 4 pk, 6 pk | organic, low fat, gluten free, kosher
+ | breakfast, smoothies and snacks
*greek yogurt | yogurt | greek yoghurt | plain, vanilla, strawberry, honey, blueberry | Nonfat Greek Yogurt
yogurt cups | yogurt | lowfat yogurt, yogurt cup | strawberry, vanilla, peach, blueberry | Lowfat Yogurt Cups
drinkable yogurt | yogurt | yogurt drink, yogurt smoothie | strawberry, mixed berry | Yogurt Smoothie | 7 oz, 32 fl oz
kefir | | kefir milk, cultured milk | plain, strawberry | Cultured Lowfat Kefir | 32 fl oz
@ dairy eggs > cream & creamer | 16 fl oz, 32 fl oz, 1 pt, 1 qt | organic, kosher, lactose free | coffee and cooking
coffee creamer | creamer | creamer | french vanilla, hazelnut, original, sweet cream | French Vanilla Creamer
half and half | | half & half, half n half | | Half & Half
heavy cream | | heavy whipping cream, whipping cream, double cream | | Heavy Whipping Cream
sour cream | | | | Sour Cream, Light Sour Cream
whipped cream | | whipped topping, whip cream | | Whipped Cream Topping
@ bakery > bread | 20 oz, 24 oz, 16 oz, 1 loaf | organic, whole grain, gluten free, vegan, keto | sandwiches and toast
white bread | bread | sandwich bread, sliced bread | | Classic White Bread, Sandwich Loaf
*whole wheat bread | bread | wheat bread, whole grain bread, brown bread | | 100% Whole Wheat Bread
sourdough bread | bread | sourdough | | Sourdough Loaf, San Francisco Sourdough
bagels | | bagel | plain, everything, cinnamon raisin, sesame | Everything Bagels | 6 ct, 12 ct
english muffins | | english muffin | original, whole wheat | Original English Muffins | 6 ct, 12 ct
hamburger buns | buns | burger buns, hamburger rolls | | Hamburger Buns, Brioche Burger Buns | 8 ct, 12 ct
hot dog buns | buns | hot dog rolls | | Hot Dog Buns | 8 ct
dinner rolls | | rolls, brioche rolls | brioche, potato | Brioche Dinner Rolls | 12 ct, 24 ct
@ bakery > tortillas & flatbreads | 10 ct, 12 ct, 20 ct, 30 ct | organic, gluten free, vegan, kosher
+ | tacos, wraps and quesadillas
flour tortillas | tortillas | burrito wraps, soft tortillas | soft taco, burrito size, fajita
+ | Soft Taco Flour Tortillas
corn tortillas | tortillas | | white corn, yellow corn | Yellow Corn Tortillas
pita bread | flatbread | pita, pitas | white, whole wheat | Pocket Pita | 6 ct, 8 ct
naan | flatbread | naan bread | garlic, plain | Garlic Naan | 2 ct, 4 ct
wraps | | wrap, spinach wraps | spinach, tomato basil | Spinach Herb Wraps, Sandwich Wraps | 6 ct, 8 ct
@ bakery > bakery desserts | 4 ct, 6 ct, 12 ct, each | kosher, vegan, gluten free | dessert, breakfast and parties
muffins | | muffin | blueberry, chocolate chip, banana nut | Blueberry Muffins, Bakery Muffins
croissants | | croissant | butter, chocolate | Butter Croissants
donuts | | doughnuts, donut | glazed, chocolate frosted, powdered | Glazed Donuts
cupcakes | | cupcake | vanilla, chocolate | Frosted Cupcakes
apple pie | | dutch apple pie | dutch | Dutch Apple Pie, Apple Pie | each, 8 in
@ meat seafood > poultry | 1 lb, 1.5 lb, 2 lb, 3 lb family pack | organic, non-gmo, keto
+ | grilling and weeknight dinners
*chicken breast | chicken | chicken breasts, boneless chicken breast | | Boneless Skinless Chicken Breasts
chicken thighs | chicken | chicken thigh, boneless thighs | | Boneless Skinless Chicken Thighs
chicken wings | chicken | wings, party wings | | Party Wings, Chicken Wingettes
whole chicken | chicken | roaster chicken, fryer chicken | | Whole Fryer Chicken, Roaster
ground turkey | | turkey mince | 93% lean, 85% lean | Lean Ground Turkey
@ meat seafood > beef & pork | 1 lb, 1.5 lb, 2 lb, 12 oz | organic, grass fed, keto, gluten free
+ | grilling, tacos and dinners
*ground beef | beef | hamburger meat, minced beef, beef mince | 80% lean, 90% lean, 93% lean | Lean Ground Beef
steak | beef | ribeye, sirloin steak, ribeye steak | ribeye, sirloin, new york strip | Ribeye Steak, Sirloin Steak
pork chops | | pork chop | bone-in, boneless | Center Cut Pork Chops
*bacon | | bacon strips | hickory smoked, applewood smoked, thick cut | Thick Cut Bacon, Smoked Bacon | 12 oz, 16 oz
sausage | | sausages, breakfast sausage, italian sausage | mild, hot, maple | Breakfast Sausage Links
hot dogs | | hotdogs, franks, wieners | beef, classic | Beef Franks, Jumbo Franks | 8 ct, 12 oz, 16 oz
@ meat seafood > seafood | 8 oz, 12 oz, 1 lb, 2 lb | wild caught, gluten free, keto | healthy dinners and grilling
salmon | fish | salmon fillet, salmon fillets | atlantic, sockeye | Atlantic Salmon Fillets
shrimp | | prawns, jumbo shrimp | jumbo, cooked, raw | Jumbo Raw Shrimp, Cooked Shrimp
tilapia | fish | tilapia fillets | | Tilapia Fillets
cod | fish | cod fillets, white fish | | Cod Fillets, Atlantic Cod
@ deli > deli meats | 7 oz, 8 oz, 9 oz, 16 oz | gluten free, keto, nitrate free | sandwiches, wraps and snack plates
sliced turkey | lunch meat | turkey breast, deli turkey, turkey lunch meat | oven roasted, smoked, honey
+ | Turkey Breast
deli ham | lunch meat | sliced ham, ham | honey, black forest, smoked | Black Forest Ham, Honey Ham
salami | lunch meat | genoa salami | genoa, hard | Genoa Salami
roast beef | lunch meat | sliced roast beef | | Seasoned Roast Beef
pepperoni | | pepperoni slices | | Sliced Pepperoni | 5 oz, 6 oz
@ deli > prepared foods | 8 oz, 10 oz, 16 oz, each | vegan, gluten free, kosher, organic
+ | parties, lunches and quick dinners
hummus | dip | | classic, roasted red pepper, garlic, everything | Classic Hummus, Hummus Dip
guacamole | dip | guac | mild, spicy | Homestyle Guacamole
rotisserie chicken | chicken | roast chicken, cooked chicken | | Rotisserie Chicken, Roasted Whole Chicken | each | -
potato salad | | | classic, mustard | Homestyle Potato Salad
@ frozen > frozen meals | 12 oz, 16 oz, 24 oz, 32 oz | organic, gluten free, vegan, kosher | easy dinners and lunches
*frozen pizza | | pizza | pepperoni, cheese, supreme, margherita | Rising Crust Pizza, Thin Crust Pizza
chicken nuggets | | nuggets, chicken nugs | | Breaded Chicken Nuggets, Dino Nuggets | 16 oz, 29 oz, 5 lb
frozen burritos | | burrito, burritos | bean and cheese, beef and bean | Bean & Cheese Burritos | 8 ct, 5 oz
frozen lasagna | | lasagna, lasagne | meat, vegetable | Classic Lasagna, Family Size Lasagna | 38 oz, 90 oz
fish sticks | | fish fingers | | Breaded Fish Sticks | 19 oz, 24 ct
@ frozen > frozen vegetables & fruit | 10 oz, 12 oz, 16 oz, 32 oz | organic, non-gmo | quick sides and smoothies
frozen peas | | peas, green peas | | Sweet Peas, Garden Peas
mixed vegetables | | frozen mixed vegetables, frozen veggies, mixed veggies | | Mixed Vegetables, California Blend
french fries | | fries, frozen fries | crinkle cut, shoestring, steak cut | Crinkle Cut Fries | 28 oz, 32 oz
tater tots | | tots, potato puffs | | Potato Puffs, Tots | 28 oz, 32 oz
frozen berries | | frozen fruit | mixed, triple berry | Triple Berry Blend, Mixed Berries
@ frozen > ice cream | 1.5 qt, 1 pt, 48 fl oz, 6 ct | organic, sugar free, vegan, kosher | dessert and summer treats
*ice cream | | icecream | vanilla, chocolate, strawberry, cookies and cream, mint chocolate chip | Premium Ice Cream
frozen yogurt | | froyo, frozen yoghurt | vanilla, chocolate, strawberry | Frozen Yogurt, Fro-Yo
ice pops | | popsicles, freezer pops, ice lollies | fruit, cherry, lime | Fruit Bars, Freezer Pops | 12 ct, 20 ct
ice cream sandwiches | | ice cream sandwich | vanilla, chocolate | Ice Cream Sandwiches | 6 ct, 12 ct
@ frozen > ice | 5 lb bag, 7 lb bag, 10 lb bag, 20 lb bag | - | coolers, parties and drinks
ice | | bagged ice, ice cubes | crushed, cubed | Ice Cubes, Party Ice
@ frozen > frozen breakfast | 10 ct, 12 ct, 24 ct | organic, gluten free, whole grain | quick breakfasts
frozen waffles | | waffles, toaster waffles | homestyle, blueberry, buttermilk | Homestyle Waffles
breakfast sandwiches | | frozen breakfast sandwich | sausage egg and cheese, bacon egg and cheese
+ | Breakfast Sandwiches | 4 ct
@ pantry > pasta & sauce | 12 oz, 16 oz, 1 lb, 2 lb | organic, gluten free, whole grain, non-gmo, vegan | easy dinners
*spaghetti | pasta | spaghetti noodles, spaghetti pasta | thin | Spaghetti, Thin Spaghetti
penne | pasta | penne pasta, penne rigate | | Penne Rigate
*macaroni and cheese | | mac and cheese, mac n cheese, macaroni & cheese, mac & cheese
+ | original, white cheddar, homestyle | Shells & Cheddar, Mac & Cheese Dinner | 6 oz, 7.25 oz, 5 pk
elbow macaroni | pasta | macaroni, elbows | | Elbow Macaroni
lasagna noodles | pasta | lasagna sheets, lasagne noodles | oven ready | Oven Ready Lasagna, Lasagna
egg noodles | noodles | | wide, extra wide | Wide Egg Noodles
pasta sauce | | marinara, marinara sauce, spaghetti sauce | tomato basil, vodka, garlic | Marinara Sauce
+ | 24 oz, 32 oz
pesto | | basil pesto | | Basil Pesto | 6 oz, 8 oz
@ pantry > rice & grains | 1 lb, 2 lb, 5 lb, 32 oz | organic, gluten free, non-gmo, whole grain
+ | sides, bowls and stir fries
*white rice | rice | long grain rice, long grain white rice | | Long Grain White Rice, Enriched Rice
brown rice | rice | whole grain rice | | Whole Grain Brown Rice
jasmine rice | rice | thai rice | | Thai Jasmine Rice
basmati rice | rice | | | Aged Basmati Rice
quinoa | | | white, tricolor | Tricolor Quinoa
couscous | | | | Pearl Couscous
@ pantry > baking | 1 lb, 2 lb, 4 lb, 5 lb | organic, non-gmo, kosher, gluten free | baking cookies, cakes and bread
all purpose flour | | flour, ap flour, plain flour | unbleached | Unbleached All-Purpose Flour
sugar | | granulated sugar, white sugar, cane sugar | | Pure Cane Sugar
brown sugar | | light brown sugar, dark brown sugar | light, dark | Light Brown Sugar
powdered sugar | | icing sugar, confectioners sugar | | Confectioners Powdered Sugar
baking soda | | bicarbonate of soda, bicarb | | Pure Baking Soda | 16 oz, 4 lb
baking powder | | | | Double Acting Baking Powder | 8.1 oz, 10 oz
vanilla extract | | vanilla, pure vanilla | pure, imitation | Pure Vanilla Extract | 2 fl oz, 4 fl oz
chocolate chips | | choc chips, semi sweet chips | semi-sweet, dark chocolate | Semi-Sweet Morsels | 12 oz, 24 oz
cake mix | | boxed cake mix | yellow, chocolate, confetti | Yellow Cake Mix, Moist Cake Mix | 15.25 oz
brownie mix | | brownie | fudge, chocolate chunk | Fudge Brownie Mix | 18 oz
ice cream cones | | waffle cones, sugar cones, cones | waffle, sugar, cake | Waffle Cones, Cake Cups | 12 ct, 24 ct
yeast | | active dry yeast, instant yeast | | Active Dry Yeast | 3 ct, 4 oz
@ pantry > condiments | 12 oz, 16 oz, 20 oz, 32 oz | organic, gluten free, sugar free, vegan
+ | burgers, sandwiches and dipping
ketchup | | catsup, tomato ketchup | | Tomato Ketchup
mustard | | yellow mustard | yellow, dijon, honey, spicy brown | Dijon Mustard, Yellow Mustard
mayonnaise | | mayo | real, light, avocado oil | Real Mayonnaise, Mayo
bbq sauce | | barbecue sauce, barbeque sauce | original, honey, hickory | Barbecue Sauce
hot sauce | | pepper sauce | original, habanero, chipotle | Louisiana Hot Sauce | 5 fl oz, 12 fl oz
ranch dressing | dressing | ranch, ranch salad dressing | classic, buttermilk | Ranch Dressing
italian dressing | dressing | | zesty, light | Zesty Italian Dressing
pickles | | dill pickles, pickle | dill, bread and butter, kosher dill | Kosher Dill Spears, Pickle Chips
@ pantry > oils & vinegars | 16 fl oz, 24 fl oz, 48 fl oz, 1 gal | organic, non-gmo, kosher
+ | cooking, baking and dressings
olive oil | oil | extra virgin olive oil, evoo | extra virgin, light | Extra Virgin Olive Oil
vegetable oil | oil | cooking oil | | Pure Vegetable Oil, Canola Oil
coconut oil | oil | | refined, virgin | Virgin Coconut Oil | 14 fl oz, 28 fl oz
apple cider vinegar | | acv, cider vinegar | raw | Raw Apple Cider Vinegar
cooking spray | | nonstick spray, oil spray | canola, olive oil, butter | Canola Cooking Spray | 6 oz, 8 oz
@ pantry > spreads | 12 oz, 16 oz, 18 oz, 28 oz | organic, gluten free, non-gmo, vegan | toast, sandwiches and snacks
*peanut butter | | pb, peanutbutter | creamy, crunchy, natural | Creamy Peanut Butter, Peanut Spread
almond butter | | | creamy, crunchy | Creamy Almond Butter
grape jelly | | jelly, concord grape jelly | | Concord Grape Jelly
strawberry jam | | jam, strawberry preserves, preserves | | Strawberry Preserves, Strawberry Fruit Spread
honey | | raw honey, clover honey | clover, wildflower | Pure Clover Honey, Honey Bear
hazelnut spread | | chocolate hazelnut spread, choc spread | | Cocoa Hazelnut Spread
@ pantry > spices | 1 oz, 2 oz, 2.5 oz, 4 oz | organic, non-gmo | seasoning every meal
salt | | table salt, sea salt, kosher salt | iodized, pink himalayan | Iodized Salt, Fine Sea Salt | 26 oz, 16 oz
black pepper | | pepper, ground pepper, peppercorns | ground, whole | Ground Black Pepper
cinnamon | | ground cinnamon | ground, sticks | Ground Cinnamon
garlic powder | | | | Garlic Powder
chili powder | | | | Chili Powder
taco seasoning | | taco seasoning mix | mild, original | Taco Seasoning Mix
@ canned goods > soup & broth | 14.5 oz, 15 oz, 32 oz, 10.75 oz | organic, gluten free, low sodium, non-gmo
+ | soups and recipes
chicken broth | broth | chicken stock | | Chicken Stock, Chicken Bone Broth
beef broth | broth | beef stock | | Beef Stock
vegetable broth | broth | veggie broth, vegetable stock | | Vegetable Stock
chicken noodle soup | soup | chicken soup | | Homestyle Chicken Noodle Soup
tomato soup | soup | cream of tomato soup | | Creamy Tomato Soup
@ canned goods > canned vegetables & beans | 15 oz, 15.5 oz, 28 oz | organic, no salt added, low sodium
+ | chili, salads and sides
black beans | beans | canned black beans | | Black Beans
chickpeas | beans | garbanzo beans, garbanzos, chick peas | | Garbanzo Beans
kidney beans | beans | red kidney beans | dark red, light red | Dark Red Kidney Beans
refried beans | beans | | traditional, vegetarian | Traditional Refried Beans | 16 oz
diced tomatoes | | canned tomatoes, chopped tomatoes | fire roasted, petite | Petite Diced Tomatoes
tomato paste | | | | Tomato Paste | 6 oz, 12 oz
canned corn | | whole kernel corn | | Whole Kernel Sweet Corn
@ canned goods > canned meat & fruit | 5 oz, 12 oz, 15 oz, 24 oz | no salt added, gluten free, no sugar added
+ | lunches
canned tuna | | tuna, tuna fish | chunk light, solid white | Chunk Light Tuna in Water | 5 oz, 4 pk
canned chicken | | chunk chicken | | Chunk Chicken Breast | 12.5 oz
apple sauce | | applesauce, apple sauce cups | unsweetened, cinnamon | Unsweetened Applesauce | 24 oz, 6 pk
canned peaches | | peaches in juice | sliced, halves | Sliced Peaches in Juice
chili | | canned chili, chili con carne | with beans, no beans | Chili with Beans
@ breakfast > cereal | 10 oz, 12 oz, 18 oz, 24 oz | organic, gluten free, whole grain, non-gmo
+ | breakfast and snacking
corn flakes | cereal | cornflakes | | Toasted Corn Flakes
toasted oat cereal | cereal | oat cereal, oat o's | honey nut, original | Toasted Oats, Honey Nut O's
frosted flakes | cereal | sugar flakes | | Frosted Flakes Cereal
raisin bran | cereal | bran flakes | | Raisin Bran Crunch
granola | | granola cereal | honey almond, vanilla, cinnamon | Honey Almond Granola
*oatmeal | | oats, rolled oats, porridge, instant oatmeal | maple brown sugar, original, apple cinnamon
+ | Old Fashioned Oats
@ breakfast > pancakes & syrup | 12 oz, 24 oz, 32 oz | organic, gluten free | weekend breakfasts
pancake mix | | pancake and waffle mix, pancakes | buttermilk, original | Buttermilk Pancake Mix
maple syrup | | pancake syrup, syrup | pure, original | Pure Maple Syrup, Pancake Syrup
toaster pastries | | toaster tarts | strawberry, brown sugar cinnamon | Frosted Toaster Pastries | 8 ct, 12 ct
@ snacks > chips | 8 oz, 9 oz, 10 oz, 13 oz | organic, gluten free, non-gmo, vegan, kosher
+ | dips, parties and game day
*tortilla chips | chips | tortilla chip, corn chips | sea salt, lime, restaurant style, blue corn
+ | Restaurant Style Tortilla Chips
*potato chips | chips | potato crisps | sea salt, sour cream and onion, barbecue, salt and vinegar
+ | Kettle Cooked Potato Chips
pita chips | chips | | sea salt, parmesan garlic | Baked Pita Chips
cheese puffs | | cheese curls, cheesy puffs | crunchy, baked | Cheese Curls
pretzels | | pretzel, pretzel twists | mini, rods, honey mustard | Mini Pretzel Twists
popcorn | | microwave popcorn, kettle corn | butter, kettle corn, white cheddar, sea salt | Microwave Popcorn
veggie straws | | vegetable straws | sea salt, ranch | Garden Veggie Straws
@ snacks > crackers | 7 oz, 8 oz, 10 oz, 13.7 oz | organic, gluten free, whole grain, non-gmo
+ | snacking and cheese boards
saltine crackers | crackers | saltines, soda crackers | | Original Saltines
cheese crackers | crackers | cheddar crackers | | Baked Cheddar Snack Crackers, Cheese Squares
graham crackers | crackers | grahams | honey, cinnamon | Honey Graham Crackers
wheat crackers | crackers | whole wheat crackers | | Stoneground Wheat Crackers
rice cakes | | rice cake, puffed rice cakes | lightly salted, caramel, apple cinnamon | Lightly Salted Rice Cakes
@ snacks > nuts & dried fruit | 8 oz, 16 oz, 24 oz, 2.5 lb | organic, non-gmo, gluten free, vegan
+ | snacking and trail mixes
peanuts | nuts | roasted peanuts, peanut | salted, honey roasted, unsalted | Dry Roasted Peanuts
almonds | nuts | almond, raw almonds | roasted, raw, smoked | Whole Natural Almonds
cashews | nuts | cashew | roasted, salted | Whole Cashews
mixed nuts | nuts | nut mix, deluxe mixed nuts | | Deluxe Mixed Nuts
trail mix | | | sweet and salty, tropical | Mountain Trail Mix
raisins | | | golden, seedless | Seedless Raisins
@ snacks > cookies & candy | 7 oz, 10 oz, 13 oz, 1.55 oz | gluten free, vegan, kosher, sugar free
+ | treats and lunch boxes
chocolate chip cookies | cookies | choc chip cookies | chewy, crunchy | Chewy Chocolate Chip Cookies
sandwich cookies | cookies | cream cookies, chocolate sandwich cookies | chocolate, vanilla, double stuffed
+ | Creme Cookies
chocolate bar | candy | candy bar, milk chocolate | dark, almond, caramel, sea salt
+ | Milk Chocolate Bar, Dark Chocolate
gummy bears | candy | gummies, gummy candy | sour, original | Sour Gummy Bears, Gummi Bears
@ snacks > bars | 6 ct, 8 ct, 12 ct | gluten free, non-gmo, vegan, keto | breakfast on the go and workouts
granola bars | bars | granola bar | chocolate chip, oats and honey, peanut butter | Chewy Granola Bars
protein bars | bars | protein bar | chocolate peanut butter, cookie dough | High Protein Bars
@ snacks > dips | 12 oz, 15 oz, 16 oz, 24 oz | gluten free, vegan, organic | chips, veggies and parties
salsa | dip | | mild, medium, hot, chunky | Chunky Salsa, Restaurant Style Salsa
queso | dip | queso dip, cheese dip | | Queso Blanco Dip
spinach dip | dip | | | Spinach Artichoke Dip
@ beverages > soda | 12 pk 12 fl oz, 6 pk 16.9 fl oz, 2 l, 20 fl oz | sugar free, caffeine free, kosher
+ | parties and meals
*cola | soda | cola soda, cola pop | cherry, vanilla | Classic Cola, Cola Soda
lemon-lime soda | soda | lemon lime soda, lemon lime pop | | Lemon-Lime Soda, Citrus Soda
root beer | soda | rootbeer | | Old Fashioned Root Beer
ginger ale | soda | | | Ginger Ale
orange soda | soda | orange pop | | Orange Soda
club soda | | soda water | | Club Soda | 1 l, 12 pk 12 fl oz
@ beverages > juice | 52 fl oz, 59 fl oz, 64 fl oz, 1 gal | organic, no sugar added, non-gmo, kosher
+ | breakfast and lunch boxes
*orange juice | juice | oj, orange juice not from concentrate | pulp free, some pulp, high pulp | 100% Orange Juice
apple juice | juice | | | 100% Apple Juice
cranberry juice | juice | cranberry cocktail, cran juice | | Cranberry Juice Cocktail
grape juice | juice | | concord, white | 100% Grape Juice
lemonade | | | original, pink, strawberry | Old Fashioned Lemonade
fruit punch | | punch | tropical | Fruit Punch
@ beverages > water | 24 pk 16.9 fl oz, 1 gal, 12 pk 12 fl oz, 1 l | - | staying hydrated
*bottled water | water | spring water, drinking water | | Natural Spring Water, Purified Drinking Water
sparkling water | water | seltzer, seltzer water, fizzy water | lime, lemon, grapefruit, berry | Sparkling Seltzer
coconut water | | | pure, pineapple | Pure Coconut Water | 1 l, 6 pk 11 fl oz | organic
@ beverages > coffee & tea | 12 oz, 24 oz, 12 ct, 24 ct | organic, kosher, caffeine free
+ | mornings and afternoon breaks
*coffee | | ground coffee, coffee grounds | medium roast, dark roast, breakfast blend, french roast | Ground Coffee
+ | 12 oz, 24 oz, 30.5 oz
coffee pods | | k cups, k-cups, single serve coffee | medium roast, dark roast | Single Serve Coffee Pods | 12 ct, 24 ct
whole bean coffee | | coffee beans | espresso, dark roast | Whole Bean Espresso Roast | 12 oz, 2 lb
cold brew coffee | | cold brew, iced coffee | black, vanilla | Cold Brew Coffee | 32 fl oz, 4 pk
black tea | tea | english breakfast tea, tea bags | english breakfast, earl grey | English Breakfast Tea
+ | 20 ct, 100 ct
green tea | tea | | jasmine, matcha | Green Tea Bags | 20 ct, 40 ct
iced tea | | sweet tea, bottled iced tea | lemon, sweet, unsweetened | Sweet Tea | 64 fl oz, 12 pk
@ beverages > sports & energy | 12 pk 12 fl oz, 20 fl oz, 4 pk 16 fl oz | sugar free, caffeine free
+ | workouts and long days
sports drink | | electrolyte drink, sports drinks | fruit punch, lemon-lime, orange | Thirst Quencher
energy drink | | energy drinks | original, tropical | Energy Drink
kombucha | | booch | ginger, berry | Raw Kombucha | 16 fl oz | organic, vegan
@ household > paper goods | 6 ct, 12 ct, 24 ct, 100 ct | fragrance free, eco friendly | around the house
*toilet paper | | tp, toilet tissue, bath tissue | ultra soft, ultra strong | Bath Tissue, Double Rolls
+ | 6 rolls, 12 rolls
paper towels | | kitchen roll, paper towel | select a size | Select-A-Size Paper Towels | 6 rolls, 8 rolls
facial tissues | | tissues, tissue | | Facial Tissue, Lotion Tissues | 3 ct, 4 ct
napkins | | paper napkins | | Everyday Napkins | 100 ct, 250 ct
paper plates | | disposable plates | | Everyday Paper Plates | 50 ct, 100 ct
@ household > cleaning | 20 fl oz, 32 fl oz, 64 fl oz, 92 fl oz | fragrance free, eco friendly | a cleaner home
dish soap | | dishwashing liquid, washing up liquid, dish detergent | lemon, original | Dishwashing Liquid
dishwasher pods | | dishwasher detergent, dishwasher tablets | lemon, fresh | Dishwasher Detergent Pacs | 32 ct
laundry detergent | | detergent, laundry soap | fresh scent, lavender | Liquid Laundry Detergent
fabric softener | | dryer sheets, softener | lavender, fresh | Fabric Softener Sheets | 80 ct, 120 ct
all purpose cleaner | | multi surface cleaner, spray cleaner | lemon, lavender | Multi-Surface Cleaner
bleach | | | regular, splash-less | Concentrated Bleach
sponges | | sponge, scrub sponges | | Non-Scratch Scrub Sponges | 3 ct, 6 ct
@ household > kitchen supplies | 20 ct, 40 ct, 75 sq ft, 200 sq ft | eco friendly | storing, wrapping and tidying up
trash bags | | garbage bags, bin bags, bin liners | drawstring, lavender | Tall Kitchen Drawstring Bags
aluminum foil | | tin foil, aluminium foil, foil | heavy duty | Heavy Duty Aluminum Foil
plastic wrap | | cling wrap, cling film | | Cling Wrap
sandwich bags | | zipper bags, storage bags | sandwich, quart, gallon | Zipper Sandwich Bags
batteries | | aa batteries, aaa batteries | aa, aaa | Alkaline Batteries | 4 ct, 8 ct, 16 ct | -
@ personal care > bath & body | 12 fl oz, 16 fl oz, 22 fl oz, 4 ct | fragrance free, vegan | daily care
body wash | | shower gel | lavender, coconut, shea butter | Moisturizing Body Wash
bar soap | | soap bar, soap bars | | Moisturizing Beauty Bar
hand soap | | liquid hand soap, hand wash | lemon, lavender | Foaming Hand Soap
shampoo | | | moisturizing, clarifying | Moisture Shampoo
conditioner | | hair conditioner | | Moisture Conditioner
deodorant | | antiperspirant | fresh, powder | Invisible Solid Antiperspirant | 2.6 oz, 2 pk
body lotion | | lotion, moisturizer | shea butter, aloe | Daily Moisturizing Lotion
@ personal care > oral care | 1 ct, 2 pk, 4 oz, 16 fl oz | fragrance free, vegan | a healthy smile
toothpaste | | tooth paste | whitening, mint, sensitive | Whitening Toothpaste
toothbrush | | toothbrushes, tooth brush | soft, medium | Soft Toothbrush
mouthwash | | mouth wash, mouth rinse | mint | Antiseptic Mouth Rinse
dental floss | | floss | mint, waxed | Mint Waxed Floss
@ personal care > health | 24 ct, 50 ct, 100 ct, 8 fl oz | - | feeling better
pain reliever | | ibuprofen, painkillers, pain relief | | Ibuprofen Tablets
multivitamin | | vitamins, multivitamins, daily vitamin | | Daily Multivitamin Gummies
bandages | | plasters, adhesive bandages | | Adhesive Bandages
sunscreen | | sunblock, spf | spf 30, spf 50 | Broad Spectrum Sunscreen Lotion
razors | | razor, disposable razors | | Disposable Razors | 4 ct, 12 ct
cotton swabs | | cotton buds, q tips | | Cotton Swabs | 300 ct, 500 ct
@ babies > baby care | 32 ct, 64 ct, 128 ct | fragrance free | little ones
diapers | | nappies, diaper | newborn, size 1, size 2, size 3, size 4 | Baby Diapers
baby wipes | | wipes, wet wipes | sensitive | Sensitive Baby Wipes
baby shampoo | | baby wash | | Tear Free Baby Shampoo | 13.6 fl oz
@ babies > baby food & formula | 4 oz, 12.4 oz, 4 pk, 30 oz | organic, non-gmo | little ones
baby formula | | infant formula, formula | | Infant Formula with Iron
baby food | | baby puree, baby food pouches | apple, banana, sweet potato, pear | Baby Food Pouch
@ pets > dog | 3.5 lb, 15 lb, 30 lb | grain free | happy dogs
dog food | pet food | dry dog food, dog kibble, kibble | chicken, beef, lamb and rice | Adult Dry Dog Food
dog treats | | dog biscuits | | Dog Biscuits, Chewy Dog Treats | 16 oz, 24 oz
@ pets > cat | 3 oz, 3.5 lb, 16 lb | grain free | happy cats
cat food | pet food | wet cat food, dry cat food | salmon, chicken, tuna | Indoor Cat Food
cat litter | | kitty litter, litter | clumping, unscented | Clumping Cat Litter | 20 lb, 40 lb
cat treats | | | | Crunchy Cat Treats | 3 oz, 6 oz
@ international > asian | 10 fl oz, 15 fl oz, 8 oz, 6 pk | organic, gluten free, vegan | stir fries and noodle bowls
soy sauce | | shoyu | | Naturally Brewed Soy Sauce | | gluten free, low sodium
instant ramen | noodles | ramen, instant noodles, cup noodles, ramen noodles | chicken, beef, shrimp, spicy
+ | Ramen Noodle Soup
sriracha | | sriracha sauce, chili sauce | | Hot Chili Sauce
coconut milk | | | lite, full fat | Coconut Milk | 13.5 fl oz
rice noodles | noodles | pad thai noodles, rice vermicelli | | Rice Stick Noodles
curry paste | | | red, green, yellow | Red Curry Paste | 4 oz
@ international > mexican | 8 oz, 10 oz, 15 oz, 16 oz | gluten free, vegan | taco night
taco shells | | hard taco shells | | Crunchy Taco Shells | 12 ct, 18 ct
enchilada sauce | | | red, green | Red Enchilada Sauce
salsa verde | | green salsa, tomatillo salsa | | Salsa Verde
@ alcohol > beer | 6 pk 12 fl oz, 12 pk 12 fl oz, 24 pk 12 fl oz | gluten free | game day and barbecues
lager | beer | lager beer | | Premium Lager
ipa | beer | india pale ale, hazy ipa | hazy, west coast, double | Hazy IPA
light beer | beer | lite beer | | Light Lager
hard seltzer | | spiked seltzer | black cherry, lime, mango | Hard Seltzer Variety Pack | 12 pk 12 fl oz | -
@ alcohol > wine | 750 ml, 1.5 l, 3 l box | organic | dinners and celebrations
red wine | wine | cabernet, merlot | cabernet sauvignon, merlot, pinot noir | Cabernet Sauvignon, Merlot
white wine | wine | chardonnay, sauvignon blanc | chardonnay, pinot grigio | Chardonnay, Pinot Grigio
rose wine | wine | rose, rosé | | Dry Rosé
sparkling wine | wine | prosecco, champagne, bubbly | brut | Brut Sparkling Wine, Prosecco
"""

# Synonyms of generic words (the type synonyms are in the taxonomy).
_GENERIC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "soda": ("pop", "soft drink", "soft drinks", "sodas"),
    "chips": ("crisps",),
    "cookies": ("biscuits",),
    "candy": ("sweets", "candies"),
    "lunch meat": ("deli meat", "cold cuts", "luncheon meat"),
    "beer": ("beers",),
    "tortillas": ("tortilla",),
    "cereal": ("breakfast cereal",),
    "juice": ("juices",),
    "noodles": ("noodle",),
    "herbs": ("fresh herbs",),
    "berries": ("fresh berries",),
    "dip": ("dips",),
    "bread": ("loaf of bread",),
    "fish": ("fresh fish",),
    "greens": ("leafy greens",),
    "crackers": ("cracker",),
    "bars": ("snack bars",),
    "broth": ("stock",),
    "soup": ("soups",),
    "beans": ("canned beans",),
    "pet food": ("pet food",),
}

# Pairs of types in different aisles that are complements: graded 1 (related) rather than 0 for each other.
_COMPLEMENTS = (
    ("tortilla chips", "salsa"),
    ("tortilla chips", "queso"),
    ("spaghetti", "pasta sauce"),
    ("penne", "pasta sauce"),
    ("peanut butter", "grape jelly"),
    ("peanut butter", "strawberry jam"),
    ("hot dogs", "hot dog buns"),
    ("ground beef", "hamburger buns"),
    ("tomato", "diced tomatoes"),
    ("salsa", "salsa verde"),
    ("bagels", "cream cheese"),
    ("corn flakes", "whole milk"),
    ("pancake mix", "maple syrup"),
    ("taco shells", "taco seasoning"),
    ("flour tortillas", "taco seasoning"),
)

# Words that look alike without sharing a token: confusables beyond shared words.
_EXTRA_CONFUSABLES = (("lemon", "lemonade"), ("ice", "iced tea"), ("oatmeal", "oat milk"))

# Things shoppers look for that the store barely has: searches with no relevant product.
_UNSTOCKED = (
    "birthday candles",
    "propane tank",
    "charcoal",
    "phone charger",
    "fresh flowers",
    "greeting card",
    "gift card",
    "ice cream maker",
    "light bulbs",
    "motor oil",
    "dog bed",
    "stamps",
    "reading glasses",
    "bread maker",
    "coffee maker",
    "water filter",
    "chicken coop",
    "rice cooker",
)
_UNSTOCKED_SHARE = 0.02
# Zipf-Mandelbrot offset: the weight of the intent of rank r (0-based) is 1 / (r + offset) ** zipf_exponent.
_ZIPF_OFFSET = 8.0

# Searches that are always in the log once (their intents are never held out): (intent, surface form).
_SHOWCASE = (
    ("macaroni and cheese", "macaroni and cheese"),
    ("macaroni and cheese", "mac and cheese"),
    ("macaroni and cheese", "mac n cheese"),
    ("macaroni and cheese", "macaroni & cheese"),
    ("avocado", "avocado"),
    ("avocado", "avacado"),
    ("banana", "bananna"),
    ("soda", "pop"),
    ("orange juice", "oj"),
    ("toilet paper", "tp"),
    ("chickpeas", "garbanzo beans"),
    ("cilantro", "coriander"),
    ("zucchini", "courgette"),
)

# Common misspellings by word; the first is the most common.
_MISSPELLINGS: dict[str, tuple[str, ...]] = {
    "avocado": ("avacado", "avocadoe", "avocato"),
    "avocados": ("avacados", "avocadoes"),
    "banana": ("bananna", "bannana", "banan"),
    "bananas": ("bannanas", "banannas"),
    "broccoli": ("brocoli", "brocolli"),
    "yogurt": ("yoghurt", "yogourt", "yougurt"),
    "tomato": ("tomatoe", "tamato"),
    "tomatoes": ("tomatos", "tomatoe"),
    "zucchini": ("zuchini", "zucchinni"),
    "cilantro": ("cilantero",),
    "spaghetti": ("spagetti", "spahgetti"),
    "lettuce": ("lettice", "letuce"),
    "cheese": ("chese", "cheeze"),
    "cereal": ("cerial", "cerael"),
    "strawberries": ("strawberrys", "strawberies"),
    "blueberries": ("bluberries", "blueberrys"),
    "raspberries": ("rasberries", "raspberrys"),
    "cinnamon": ("cinamon", "cinnimon"),
    "jalapeno": ("jalepeno", "halapeno"),
    "mayonnaise": ("mayonaise", "mayonase"),
    "macaroni": ("macaronni", "maccaroni"),
    "chocolate": ("chocolat", "choclate", "chocalate"),
    "tortilla": ("tortila",),
    "tortillas": ("tortilas",),
    "potato": ("potatoe",),
    "potatoes": ("potatos",),
    "cucumber": ("cucumbar", "cucumer"),
    "cauliflower": ("califlower", "cauliflour"),
    "sausage": ("sausuage", "sasuage"),
    "lasagna": ("lazagna",),
    "vinegar": ("vinager",),
    "coffee": ("cofee", "coffe"),
    "vanilla": ("vanila",),
    "sandwich": ("sandwhich",),
    "pineapple": ("pinapple", "pineaple"),
    "mozzarella": ("mozarella", "mozzerella", "mozzarela"),
    "parmesan": ("parmesean", "parmasan"),
    "quinoa": ("quinao", "quiona"),
    "detergent": ("detergant",),
    "deodorant": ("deoderant", "deodarant"),
    "shampoo": ("shampo",),
    "hummus": ("humus", "hummous"),
    "guacamole": ("guacamoli", "guacomole"),
    "pretzels": ("pretzles",),
    "sriracha": ("siracha", "sirracha"),
    "ketchup": ("ketsup",),
    "lemonade": ("lemonaid",),
    "kombucha": ("kombutcha",),
    "diapers": ("diappers",),
    "toilet": ("toliet",),
    "chicken": ("chiken", "chikken"),
    "coriander": ("corriander",),
    "ibuprofen": ("ibuprofin",),
    "croissants": ("crossants", "croisants"),
    "bagels": ("bagles",),
    "spinach": ("spinich",),
    "pepperoni": ("peperoni",),
    "oatmeal": ("oatmeel",),
    "granola": ("granloa",),
}

_ATTRIBUTE_ALIASES: dict[str, tuple[str, ...]] = {
    "gluten free": ("gf", "gluten-free"),
    "sugar free": ("sugar-free", "zero sugar", "diet"),
    "non-gmo": ("non gmo",),
    "low fat": ("lowfat",),
    "lactose free": ("lactose-free",),
    "keto": ("keto friendly",),
    "cage free": ("cage-free",),
    "grass fed": ("grass-fed",),
    "fragrance free": ("unscented",),
    "vegan": ("plant based",),
    "no sugar added": ("unsweetened",),
}

# How often each dietary attribute applies to a product whose type allows it.
_DIETARY_RATE: dict[str, float] = {
    "organic": 0.2,
    "gluten free": 0.15,
    "vegan": 0.15,
    "kosher": 0.2,
    "non-gmo": 0.15,
    "low fat": 0.15,
    "sugar free": 0.12,
    "keto": 0.08,
    "lactose free": 0.1,
    "cage free": 0.35,
    "grass fed": 0.25,
    "wild caught": 0.35,
    "whole grain": 0.25,
    "no salt added": 0.12,
    "low sodium": 0.15,
    "caffeine free": 0.12,
    "fragrance free": 0.2,
    "no sugar added": 0.15,
    "nitrate free": 0.2,
    "eco friendly": 0.15,
    "grain free": 0.2,
}

_VARIANT_KEY = {"produce": "variety", "household": "variety", "personal care": "variety", "babies": "variety"}

_DEPARTMENT_GROUPS = (
    ("produce", "dairy eggs", "bakery", "meat seafood", "deli"),
    ("frozen", "pantry", "canned goods", "breakfast", "snacks", "beverages", "international"),
    ("household", "personal care", "babies", "pets"),
    ("alcohol",),
)

_BRAND_FIRST = (
    "Green", "Sunny", "Golden", "Crunchy", "Happy", "Little", "Old", "Wild", "Blue", "Red", "Silver", "Maple",
    "Cedar", "Oak", "River", "Prairie", "Harvest", "Honest", "Simple", "Pure", "True", "Fresh", "Bright",
    "Morning", "Coastal", "Mountain", "Hill", "Rolling", "Country", "Urban", "Northern", "Southern", "Heritage",
    "Lucky", "Jolly", "Clever", "Tender", "Rustic", "Prime", "Noble", "Gentle", "Kind", "Bold", "Crisp", "Cozy",
    "Humble", "Summit", "Willow", "Meadow", "Orchard", "Stone", "Copper", "Amber", "Ivy", "Juniper", "Sage",
    "Clover", "Fern", "Bay", "Lakeside",
)  # fmt: skip
_BRAND_GENERAL = (
    "Valley", "Creek", "Acres", "Fields", "Ridge", "Hollow", "Grove", "Harbor", "Peak", "Lane", "Table", "Goods",
    "Brothers", "Way", "Garden", "Farm", "Mill", "Market", "Trail", "Point",
)  # fmt: skip
_BRAND_CAMEL = ("Wise", "Leaf", "Dale", "Bloom", "Field", "Brook", "Sprout", "Crest", "Wood", "Nest", "Haven", "Star")
_BRAND_OWNER = ("Nana", "Papa", "Rosie", "Mabel", "Otto", "Hank", "Lulu", "Gus", "Ada", "Theo", "Bea", "Milo")
_BRAND_SUFFIX = {
    "produce": ("Farms", "Orchards", "Growers", "Harvest"),
    "dairy eggs": ("Creamery", "Dairy", "Farms"),
    "bakery": ("Bakehouse", "Bakery", "Ovens", "Bread Company"),
    "meat seafood": ("Ranch", "Butchers", "Smokehouse", "Seafood"),
    "deli": ("Deli", "Provisions", "Delicatessen"),
    "frozen": ("Kitchens", "Frozen Foods", "Freezer Kitchen"),
    "pantry": ("Pantry", "Mills", "Provisions", "Kitchen"),
    "canned goods": ("Cannery", "Kitchen", "Provisions"),
    "breakfast": ("Mills", "Mornings", "Oats"),
    "snacks": ("Snacks", "Crisps", "Snack Company"),
    "beverages": ("Springs", "Beverage Company", "Squeeze", "Brew"),
    "household": ("Home", "Clean", "Household"),
    "personal care": ("Naturals", "Botanics", "Care", "Apothecary"),
    "babies": ("Baby", "Little Ones", "Nursery"),
    "pets": ("Pet Supply", "Paws", "Tails"),
    "international": ("Trading Company", "Imports", "Kitchen"),
    "alcohol": ("Brewing", "Cellars", "Vineyards", "Brewery"),
}
# Store brands: name, departments ("*" = all but alcohol), the dietary attribute they favour.
_STORE_BRANDS = (
    ("GreenWise", "produce dairy eggs bakery pantry canned goods breakfast snacks beverages frozen babies", "organic"),
    ("Basics Market", "*", ""),
    ("Hometown Select", "dairy eggs bakery meat seafood deli frozen pantry snacks beverages breakfast", ""),
    ("Simply Kind", "household personal care babies pets", "fragrance free"),
)

_DESCRIPTION_OPENERS = (
    "{phrase} from {brand}.",
    "{phrase}, made by {brand}.",
    "{brand} {phrase}.",
    "Classic {phrase} by {brand}.",
)
_DESCRIPTION_USES = ("Great for {use}.", "Perfect for {use}.", "Ideal for {use}.", "Stock up for {use}.")
_EXTRA_WORDS_AFTER = ("for party", "family size", "bulk", "on sale", "for kids", "big pack")
_EXTRA_WORDS_BEFORE = ("fresh", "cheap", "best")
_STOPWORDS = frozenset({"and", "n", "&", "of", "the", "with", "in", "for", "a", "on"})
_UPPER = {"ipa": "IPA", "bbq": "BBQ", "aa": "AA", "aaa": "AAA", "spf": "SPF", "oj": "OJ", "acv": "ACV"}
_SMALL = frozenset({"and", "or", "of", "n", "in", "with", "a", "the", "on"})
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_HOURS = (1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 4, 4.5, 5, 4.5, 4, 4, 4.5, 5.5, 6.5, 7, 6.5, 5, 3.5, 2)
_TOKEN = re.compile(r"[a-z0-9%]+")


@dataclass(frozen=True, slots=True)
class ProductType:
    """One product type of the demo taxonomy, such as "tortilla chips" in "snacks > chips"."""

    type_id: int
    name: str
    department: str
    aisle: str
    generic: str
    synonyms: tuple[str, ...]
    variants: tuple[str, ...]
    heads: tuple[str, ...]
    sizes: tuple[str, ...]
    dietary: tuple[str, ...]
    staple: bool
    use: str

    @property
    def category(self) -> str:
        """The category path written in the catalogue: ``"department > aisle"``."""
        return f"{self.department} > {self.aisle}"


def _items(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_taxonomy(text: str) -> tuple[ProductType, ...]:
    types: list[ProductType] = []
    department = aisle = use = ""
    sizes: tuple[str, ...] = ()
    dietary: tuple[str, ...] = ()
    lines: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if line.startswith("+") and lines:
            lines[-1] += " " + line[1:].strip()
        elif line and not line.startswith("#"):
            lines.append(line)
    for line in lines:
        if line.startswith("@"):
            path, sizes_text, dietary_text, use = (part.strip() for part in line[1:].split("|"))
            department, aisle = split_category(path)
            sizes, dietary = _items(sizes_text), () if dietary_text == "-" else _items(dietary_text)
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 7:
            raise ValueError(f"taxonomy line has more than 7 fields: {line!r}")
        name, generic, synonyms, variants, heads, own_sizes, own_dietary = parts + [""] * (7 - len(parts))
        staple = name.startswith("*")
        own_diet = () if own_dietary == "-" else (_items(own_dietary) or dietary)
        types.append(
            ProductType(
                type_id=len(types),
                name=name.lstrip("*").strip(),
                department=department,
                aisle=aisle,
                generic=generic,
                synonyms=_items(synonyms),
                variants=_items(variants),
                heads=_items(heads),
                sizes=_items(own_sizes) or sizes,
                dietary=own_diet,
                staple=staple,
                use=use,
            )
        )
    names = [t.name for t in types]
    if len(set(names)) != len(names):
        raise ValueError("taxonomy type names must be unique")
    return tuple(types)


_TYPES = _parse_taxonomy(_TAXONOMY)


def product_types() -> tuple[ProductType, ...]:
    """The hand-written taxonomy the demo store draws its products from."""
    return _TYPES


# --------------------------------------------------------------------------------------------------------------
# Small text helpers.


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("oes"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _tokens(text: str) -> list[str]:
    return [_stem(w) for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS]


def _title(text: str) -> str:
    out = []
    for i, word in enumerate(text.split(" ")):
        if word in _UPPER:
            out.append(_UPPER[word])
        elif i and word in _SMALL:
            out.append(word)
        else:
            out.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(out)


def _keyboard_neighbours() -> dict[str, str]:
    out: dict[str, str] = {}
    for row in _KEYBOARD_ROWS:
        for i, ch in enumerate(row):
            out[ch] = row[max(0, i - 1) : i] + row[i + 1 : i + 2]
    return out


_NEIGHBOURS = _keyboard_neighbours()


def _typo(word: str, rng: random.Random) -> str:
    """One random edit of a word: drop, swap, double or hit a neighbouring key (never the first letter)."""
    i = rng.randrange(1, len(word) - 1)
    op = rng.random()
    if op < 0.3:
        return word[:i] + word[i + 1 :]
    if op < 0.6:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op < 0.8:
        return word[:i] + word[i] + word[i:]
    near = _NEIGHBOURS.get(word[i], "")
    return word[:i] + rng.choice(near) + word[i + 1 :] if near else word[:i] + word[i + 1 :]


# --------------------------------------------------------------------------------------------------------------
# The generator.


@dataclass(slots=True)
class _Brand:
    name: str
    departments: tuple[str, ...]
    specialties: frozenset[str]
    popularity: float
    store: bool = False
    new: bool = False
    favours: str = ""


@dataclass(slots=True)
class _Intent:
    key: str
    kind: str
    types: tuple[int, ...] = ()
    brand: str = ""
    attribute: str = ""
    variant: str = ""
    phrase: str = ""
    phrase_forms: tuple[str, ...] = ()
    score: float = 0.0
    forms: list[tuple[str, str]] = field(default_factory=list)
    type_set: frozenset[int] = frozenset()
    aisle_set: frozenset[int] = frozenset()
    related: frozenset[int] = frozenset()
    rank: int = 0
    heldout: bool = False
    keep: bool = False
    pools: tuple[list[int], list[int]] | None = None


@dataclass
class DemoStore:
    """A generated demo store in memory, before it is written.

    Attributes:
        products: The catalogue.
        events: The search log, in time order.
        judgements: ``(query, product_id, grade)`` rows for the held-out queries.
        event_grades: The true relevance grade (0 to 3) of each event's product for the intent behind its query;
            the simulator's ground truth, for tests and analysis.
        summary: Counts describing the store (see :func:`generate_demo_store`).
        query_intents: The intent behind each normalised query text of the log (its canonical text): several
            spellings of one intent map to the same value. Ground truth for autocomplete de-duplication.
    """

    products: list[Product]
    events: list[LogEvent]
    judgements: list[tuple[str, str, float]]
    event_grades: list[int]
    summary: dict[str, Any]
    query_intents: dict[str, str] = field(default_factory=dict)


class _Generator:
    def __init__(self, config: DemoConfig) -> None:
        self.cfg = config
        self.types = _TYPES
        self.aisles = sorted({t.category for t in self.types})
        self.aisle_id = {a: i for i, a in enumerate(self.aisles)}
        self.type_aisle = [self.aisle_id[t.category] for t in self.types]
        self.type_by_name = {t.name: t.type_id for t in self.types}
        self.departments = list(dict.fromkeys(t.department for t in self.types))
        start = date.fromisoformat(config.start_date)
        self.t0 = calendar.timegm(start.timetuple())
        self.cold_days = max(1, config.days // 12)
        self.log_end = self.t0 + (config.days - self.cold_days) * 86400

    def rng(self, stage: str) -> random.Random:
        return random.Random(f"towersearch-demo:{self.cfg.seed}:{stage}")

    # ---- catalogue ------------------------------------------------------------------------------------------
    def make_brands(self) -> None:
        rng = self.rng("brands")
        self.brand_names: set[str] = set()
        self.brands: list[_Brand] = []
        group_of = {d: g for g in _DEPARTMENT_GROUPS for d in g}
        aisles_of: dict[str, list[str]] = defaultdict(list)
        for a in self.aisles:
            aisles_of[split_category(a)[0]].append(a)
        per_department = Counter(t.department for t in self.types)
        for name, departments, favours in _STORE_BRANDS:
            depts = tuple(d for d in self.departments if d != "alcohol") if departments == "*" else ()
            if not depts:
                depts = tuple(d for d in self.departments if f" {d} " in f" {departments} ")
            self.brand_names.add(name)
            self.brands.append(_Brand(name, depts, frozenset(), 3.0 * rng.lognormvariate(0, 0.3), True, False, favours))
        for department in self.departments:
            for _ in range(max(4, round(1.5 * per_department[department]))):
                depts = [department]
                group = [d for d in group_of[department] if d != department]
                extra = rng.choices((0, 1, 2, 3), weights=(0.6, 0.25, 0.1, 0.05))[0]
                for d in rng.sample(group, min(extra, len(group))):
                    depts.append(d)
                pool = [a for d in depts for a in aisles_of[d]]
                specialties = frozenset(rng.sample(pool, min(len(pool), rng.randint(1, 3))))
                name = self._brand_name(rng, department if len(depts) == 1 else "")
                self.brands.append(_Brand(name, tuple(depts), specialties, rng.lognormvariate(0, 0.8)))

    def _brand_name(self, rng: random.Random, department: str) -> str:
        """A new brand name; with a department, it may end in a word of that department ("Creamery")."""
        suffixes = _BRAND_SUFFIX.get(department, _BRAND_GENERAL)
        for _ in range(100):
            r = rng.random()
            first = rng.choice(_BRAND_FIRST)
            if r < 0.35:
                name = f"{first} {rng.choice(suffixes)}"
            elif r < 0.6:
                name = f"{first} {rng.choice(_BRAND_GENERAL)}"
            elif r < 0.75:
                name = first + rng.choice(_BRAND_CAMEL)
            elif r < 0.9:
                name = f"{rng.choice(_BRAND_OWNER)}'s {rng.choice(suffixes)}"
            else:
                middle = rng.choice(_BRAND_GENERAL)
                name = f"{first} {middle} {rng.choice([s for s in suffixes if s != middle])}"
            if name not in self.brand_names:
                self.brand_names.add(name)
                return name
        raise RuntimeError("could not invent a new brand name")  # pragma: no cover - 60 x 20+ combinations

    def make_products(self) -> None:
        cfg, rng = self.cfg, self.rng("products")
        n = cfg.n_products
        pop = [(4.0 if t.staple else 1.0) * rng.lognormvariate(0, 0.6) for t in self.types]
        self.type_popularity = pop
        n_cold = round(cfg.cold_start_fraction * n)
        n_new = min(round(0.4 * n_cold), 40 * 8) if n_cold >= 8 else 0
        # New brands: whole launches of new products (all cold-start).
        new_specs: list[tuple[int, int]] = []  # (type id, brand index)
        if n_new:
            n_brands = max(1, min(8, n_new // 10))
            weights = [len([t for t in self.types if t.department == d]) for d in self.departments]
            for b in range(n_brands):
                department = rng.choices(self.departments, weights=weights)[0]
                own = [t.type_id for t in self.types if t.department == department]
                chosen = rng.sample(own, min(len(own), rng.randint(2, 3)))
                name = self._brand_name(rng, department)
                self.brands.append(_Brand(name, (department,), frozenset(), 1.0, new=True))
                share = n_new // n_brands + (1 if b < n_new % n_brands else 0)
                new_specs += [(chosen[i % len(chosen)], len(self.brands) - 1) for i in range(share)]
        n_regular = n - len(new_specs)
        type_weights = [p**0.7 for p in pop]
        if n_regular >= 2 * len(self.types):
            regular = list(range(len(self.types)))
            regular += rng.choices(range(len(self.types)), weights=type_weights, k=n_regular - len(regular))
        else:
            regular = rng.choices(range(len(self.types)), weights=type_weights, k=n_regular)
        specs = [(t, -1) for t in regular] + new_specs
        rng.shuffle(specs)
        new_positions = [i for i, (_, b) in enumerate(specs) if b >= 0]
        regular_positions = [i for i, (_, b) in enumerate(specs) if b < 0]
        cold = set(new_positions) | set(rng.sample(regular_positions, max(0, n_cold - len(new_positions))))
        # Brands eligible per aisle, with cumulative weights (specialty aisles 4x).
        brand_table: dict[int, tuple[list[int], list[float]]] = {}
        for a in self.aisles:
            department = split_category(a)[0]
            ids, cum, total = [], [], 0.0
            for i, b in enumerate(self.brands):
                if b.new or department not in b.departments:
                    continue
                total += b.popularity * (4.0 if a in b.specialties else 1.0)
                ids.append(i)
                cum.append(total)
            brand_table[self.aisle_id[a]] = (ids, cum)
        self.products: list[Product] = []
        self.p_type: list[int] = []
        self.p_brand: list[int] = []
        self.p_diet: list[tuple[str, ...]] = []
        self.p_variant: list[str] = []
        self.p_cold: list[bool] = []
        self.p_pop: list[float] = []
        cold_start = self.log_end
        cold_span = self.t0 + cfg.days * 86400 - cold_start
        for i, (type_id, brand_index) in enumerate(specs):
            t = self.types[type_id]
            if brand_index < 0:
                ids, cum = brand_table[self.type_aisle[type_id]]
                brand_index = ids[bisect.bisect_right(cum, rng.random() * cum[-1])]
            brand = self.brands[brand_index]
            is_cold = i in cold
            if is_cold:
                created = cold_start + rng.randrange(cold_span)
            else:
                created = self.t0 - rng.randrange(86400, 900 * 86400)
            product = self._product(rng, f"P{i + 1:06d}", t, brand, created)
            self.products.append(product)
            self.p_type.append(type_id)
            self.p_brand.append(brand_index)
            self.p_cold.append(is_cold)
            self.p_pop.append(rng.lognormvariate(0, 1.0) * math.sqrt(brand.popularity))

    def _product(self, rng: random.Random, product_id: str, t: ProductType, brand: _Brand, created: int) -> Product:
        diet = []
        for d in t.dietary:
            rate = 0.95 if d == brand.favours else _DIETARY_RATE.get(d, 0.15)
            if rng.random() < rate:
                diet.append(d)
        variant = rng.choice(t.variants) if t.variants and rng.random() < 0.75 else ""
        head = rng.choice(t.heads) if t.heads and rng.random() < 0.4 else _title(t.name)
        if variant and any(v in head.lower() for v in t.variants if v != variant):
            head = _title(t.name)  # no "Yukon Gold Russet Potatoes"
        parts = [brand.name]
        shown = 0
        for d in diet:
            if shown < 2 and rng.random() < (0.9 if d == "organic" else 0.35):
                parts.append(_title(d))
                shown += 1
        if variant and variant.replace("-", " ") not in head.lower().replace("-", " "):
            parts.append(_title(variant))
        parts.append(head)
        name = parts[0]
        for part in parts[1:]:  # "80% Lean" + "Lean Ground Beef" -> "80% Lean Ground Beef"
            first, _, rest = part.partition(" ")
            name += f" {rest}" if rest and name.rsplit(" ", 1)[-1].lower() == first.lower() else f" {part}"
        phrase = rng.choice(t.synonyms) if t.synonyms and rng.random() < 0.2 else t.name
        if variant:
            phrase = f"{variant} {phrase}"
        if diet:
            phrase = f"{', '.join(diet)} {phrase}"
        opener = rng.choice(_DESCRIPTION_OPENERS).format(phrase=phrase, brand=brand.name)
        description = f"{opener[0].upper()}{opener[1:]} {rng.choice(_DESCRIPTION_USES).format(use=t.use)}"
        attributes = {}
        if diet:
            attributes["dietary"] = ", ".join(diet)
        if variant:
            attributes[_VARIANT_KEY.get(t.department, "flavor")] = variant
        self.p_diet.append(tuple(diet))
        self.p_variant.append(variant)
        return Product(
            product_id=product_id,
            name=name,
            brand=brand.name,
            category=t.category,
            size=rng.choice(t.sizes),
            description=description,
            attributes=attributes,
            created_at=_iso(created),
        )

    def index_products(self) -> None:
        """Lists of live (not cold-start) products by type, aisle, brand and name token, most popular first."""
        by_pop = sorted(range(len(self.products)), key=lambda j: (-self.p_pop[j], j))
        self.live_by_pop = [j for j in by_pop if not self.p_cold[j]]
        self.by_type: list[list[int]] = [[] for _ in self.types]
        self.by_aisle: list[list[int]] = [[] for _ in self.aisles]
        self.all_by_aisle: list[list[int]] = [[] for _ in self.aisles]
        self.by_brand: list[list[int]] = [[] for _ in self.brands]
        self.all_by_type: list[list[int]] = [[] for _ in self.types]
        self.all_by_brand: list[list[int]] = [[] for _ in self.brands]
        self.by_token: dict[str, list[int]] = defaultdict(list)
        self.all_by_token: dict[str, list[int]] = defaultdict(list)
        for j in by_pop:
            t, b = self.p_type[j], self.p_brand[j]
            self.all_by_type[t].append(j)
            self.all_by_brand[b].append(j)
            self.all_by_aisle[self.type_aisle[t]].append(j)
            tokens = dict.fromkeys(_tokens(self.products[j].name))
            for token in tokens:
                self.all_by_token[token].append(j)
            if self.p_cold[j]:
                continue
            self.by_type[t].append(j)
            self.by_aisle[self.type_aisle[t]].append(j)
            self.by_brand[b].append(j)
            for token in tokens:
                self.by_token[token].append(j)
        # Near-misses: types whose names share a word with the query's words (tortilla chips for "tortillas").
        self.types_by_token: dict[str, set[int]] = defaultdict(set)
        for t in self.types:
            for token in _tokens(t.name):
                self.types_by_token[token].add(t.type_id)
        self.extra_confusables: dict[int, set[int]] = defaultdict(set)
        for x, y in _EXTRA_CONFUSABLES:
            self.extra_confusables[self.type_by_name[x]].add(self.type_by_name[y])
            self.extra_confusables[self.type_by_name[y]].add(self.type_by_name[x])
        complements: list[set[int]] = [set() for _ in self.types]
        for x, y in _COMPLEMENTS:
            complements[self.type_by_name[x]].add(self.type_by_name[y])
            complements[self.type_by_name[y]].add(self.type_by_name[x])
        self.complements = complements

    # ---- intents --------------------------------------------------------------------------------------------
    def make_intents(self) -> None:
        rng = self.rng("intents")
        pop = self.type_popularity
        present = [t.type_id for t in self.types if self.all_by_type[t.type_id]]
        n_present = len(present)
        intents: dict[str, _Intent] = {}

        def add(intent: _Intent) -> None:
            intent.key = normalize_query(intent.key)
            if intent.key and intent.key not in intents:
                intent.score *= rng.lognormvariate(0, 0.5)
                intents[intent.key] = intent

        generic_types: dict[str, list[int]] = defaultdict(list)
        for t in present:
            if self.types[t].generic:
                generic_types[self.types[t].generic].append(t)
        generics = {g: ts for g, ts in generic_types.items() if len(ts) >= 2}
        # Phrases ("whole milk", "milk") a modifier can combine with: (phrase, types, synonyms, popularity).
        phrases: list[tuple[str, tuple[int, ...], tuple[str, ...], float]] = []
        for t in present:
            typ = self.types[t]
            synonyms = typ.synonyms
            if typ.generic and typ.generic not in generics:
                synonyms = synonyms + (typ.generic,) + _GENERIC_SYNONYMS.get(typ.generic, ())
            phrases.append((typ.name, (t,), synonyms, pop[t]))
        for g, ts in generics.items():
            phrases.append((g, tuple(ts), _GENERIC_SYNONYMS.get(g, ()), 0.6 * sum(pop[t] for t in ts)))
        for phrase, ts, synonyms, score in phrases:
            kind = "type" if len(ts) == 1 and phrase == self.types[ts[0]].name else "generic"
            add(_Intent(phrase, kind, ts, phrase=phrase, phrase_forms=synonyms, score=score))
        # Brands.
        brand_counts = [len(self.all_by_brand[b]) for b in range(len(self.brands))]
        for b, brand in enumerate(self.brands):
            if brand_counts[b] >= 3 or (brand.new and brand_counts[b]):
                score = 0.15 * math.sqrt(brand.popularity * brand_counts[b] / 10)
                add(_Intent(brand.name, "brand", (), brand=brand.name, score=score))
        # Combinations, capped to a few per type so the intent count does not grow with the catalogue.
        combos: dict[str, list[_Intent]] = {"brand_type": [], "attribute_type": [], "variant_type": []}
        forced: list[_Intent] = []
        for phrase, ts, synonyms, score in phrases:
            if len(ts) > 1 or phrase != self.types[ts[0]].name:
                score *= 0.4  # "organic milk" is asked less often, relative to "milk", than "organic whole milk"
            members = [j for t in ts for j in self.all_by_type[t]]
            total = len(members)
            brands = Counter(self.p_brand[j] for j in members)
            for b, count in sorted(brands.items()):
                brand = self.brands[b]
                intent = _Intent(
                    f"{brand.name} {phrase}",
                    "brand_type",
                    ts,
                    brand=brand.name,
                    phrase=phrase,
                    phrase_forms=synonyms,
                    score=0.15 * score * brand.popularity * count / total,
                )
                (forced if brand.new else combos["brand_type"]).append(intent)
            diets = Counter(d for j in members for d in self.p_diet[j])
            for d, count in sorted(diets.items()):
                bonus = 2.0 if d == "organic" else 1.0
                intent = _Intent(
                    f"{d} {phrase}",
                    "attribute_type",
                    ts,
                    attribute=d,
                    phrase=phrase,
                    phrase_forms=synonyms,
                    score=0.25 * bonus * score * count / total,
                )
                combos["attribute_type"].append(intent)
            variants = Counter(self.p_variant[j] for j in members if self.p_variant[j])
            phrase_tokens = set(_tokens(phrase))
            for v, count in sorted(variants.items()):
                if set(_tokens(v)) & phrase_tokens:
                    continue
                intent = _Intent(
                    f"{v} {phrase}",
                    "variant_type",
                    ts,
                    variant=v,
                    phrase=phrase,
                    phrase_forms=synonyms,
                    score=0.25 * score * count / total,
                )
                combos["variant_type"].append(intent)
        caps = {"brand_type": 3 * n_present, "attribute_type": (3 * n_present) // 2, "variant_type": n_present * 3 // 2}
        for kind, items in combos.items():
            items.sort(key=lambda it: (-it.score, it.key))
            for intent in items[: caps[kind]]:
                add(intent)
        for intent in forced:
            add(intent)
        for text in _UNSTOCKED:
            add(_Intent(text, "unstocked", score=0.0))
        # Surface forms, with those that are another intent's canonical text removed.
        keys = set(intents)
        for intent in intents.values():
            intent.type_set = frozenset(intent.types)
            intent.aisle_set = frozenset(self.type_aisle[t] for t in intent.types)
            related = set()
            for t in intent.types:
                related |= self.complements[t]
            intent.related = frozenset(related - intent.type_set)
            intent.forms = [(f, k) for f, k in self._forms(intent) if f not in keys and f != intent.key]
        self.intents = list(intents.values())

    def _forms(self, intent: _Intent) -> list[tuple[str, str]]:
        """Deterministic alternative surface forms of an intent: synonyms, aliases and curated misspellings."""
        if intent.kind == "unstocked":
            return []
        prefix = ""
        if intent.brand:
            prefix = intent.brand.lower()
        elif intent.attribute:
            prefix = intent.attribute
        elif intent.variant:
            prefix = intent.variant
        out: list[tuple[str, str]] = []

        def join(*parts: str) -> str:
            return normalize_query(" ".join(p for p in parts if p))

        for synonym in intent.phrase_forms:
            out.append((join(prefix, synonym), "synonym"))
        for alias in _ATTRIBUTE_ALIASES.get(intent.attribute, ()):
            out.append((join(alias, intent.phrase), "synonym"))
        if intent.brand:
            plain = intent.brand.lower().replace("'", "").replace(" & ", " and ")
            out.append((join(plain, intent.phrase), "synonym"))
        words = intent.key.split(" ")
        for i, word in enumerate(words):
            for wrong in _MISSPELLINGS.get(word, ()):
                out.append((" ".join(words[:i] + [wrong] + words[i + 1 :]), "misspelling"))
        seen: set[str] = set()
        unique = []
        for form, kind in out:
            if form not in seen:
                seen.add(form)
                unique.append((form, kind))
        return unique

    def split_intents(self) -> None:
        """Rank intents by popularity, give them Zipf weights and hold out a stratified share."""
        rng = self.rng("split")
        ranked = sorted((i for i in self.intents if i.kind != "unstocked"), key=lambda i: (-i.score, i.key))
        for r, intent in enumerate(ranked):
            intent.rank = r
        showcase = {normalize_query(k) for k, _ in _SHOWCASE}
        for intent in ranked:
            intent.keep = intent.key in showcase
            intent.pools = self._pools(intent)
        forced = [i for i in ranked if not i.pools[0] and not i.keep]
        eligible = [i for i in ranked if i.pools[0] and not i.keep]
        target = round(self.cfg.heldout_fraction * len(ranked))
        need = min(len(eligible), max(0, target - len(forced)))
        chosen: list[_Intent] = list(forced)
        if need:
            step = len(eligible) / need
            for b in range(need):
                lo, hi = int(b * step), max(int(b * step) + 1, int((b + 1) * step))
                chosen.append(eligible[rng.randrange(lo, min(hi, len(eligible)))])
        for intent in chosen:
            intent.heldout = True
        self.ranked = ranked
        self.heldout = sorted(chosen, key=lambda i: i.rank)
        # Every surface form of a held-out intent is blocked from the log.
        self.blocked = set()
        for intent in self.heldout:
            self.blocked.add(intent.key)
            self.blocked.update(f for f, _ in intent.forms)
        s = self.cfg.zipf_exponent
        self.live = [i for i in ranked if not i.heldout and i.key not in self.blocked and i.pools[0]]
        weights = [1.0 / (i.rank + _ZIPF_OFFSET) ** s for i in self.live]
        self.live_cum = list(_cumsum(weights))
        self.unstocked = [i for i in self.intents if i.kind == "unstocked" and i.key not in self.blocked]
        self.unstocked_cum = list(_cumsum([1.0 / math.sqrt(r + 1) for r in range(len(self.unstocked))]))

    def _pools(self, intent: _Intent) -> tuple[list[int], list[int]]:
        """Live products of grade 3 and of grade 2 for an intent, most popular first."""
        if intent.kind == "unstocked":
            return [], []
        if not intent.types:
            return list(self.by_brand[self.brands_index[intent.brand]]), []
        members = [j for t in intent.types for j in self.by_type[t]]
        if len(intent.types) > 1:
            members.sort(key=lambda j: (-self.p_pop[j], j))
        grade3, grade2 = [], []
        for j in members:
            (grade3 if self.grade(intent, j) == 3 else grade2).append(j)
        return grade3, grade2

    def grade(self, intent: _Intent, j: int) -> int:
        """The true relevance grade of product ``j`` for ``intent``."""
        if intent.kind == "unstocked":
            return 0
        if not intent.types:
            return 3 if self.brands[self.p_brand[j]].name == intent.brand else 0
        t = self.p_type[j]
        if t in intent.type_set:
            if intent.brand and self.brands[self.p_brand[j]].name != intent.brand:
                return 2
            if intent.attribute and intent.attribute not in self.p_diet[j]:
                return 2
            if intent.variant and self.p_variant[j] != intent.variant:
                return 2
            return 3
        if self.type_aisle[t] in intent.aisle_set or t in intent.related:
            return 1
        return 0

    # ---- search log -----------------------------------------------------------------------------------------
    def surface(self, intent: _Intent, rng: random.Random) -> tuple[str, str]:
        """A surface form for one search and its kind: canonical, synonym or misspelling."""
        text, kind = intent.key, "canonical"
        if intent.kind == "unstocked":
            return text, kind
        synonyms = [f for f, k in intent.forms if k == "synonym"]
        if synonyms and rng.random() < self.cfg.synonym_rate:
            text, kind = rng.choice(synonyms), "synonym"
        words = text.split(" ")
        curated = [i for i, w in enumerate(words) if w in _MISSPELLINGS]
        if rng.random() < self.cfg.misspelling_rate:
            if curated and rng.random() < 0.8:
                i = rng.choice(curated)
                options = _MISSPELLINGS[words[i]]
                words[i] = options[0] if rng.random() < 0.5 else rng.choice(options)
                text, kind = " ".join(words), "misspelling"
            else:
                long_words = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
                if long_words:
                    i = rng.choice(long_words)
                    words[i] = _typo(words[i], rng)
                    text, kind = " ".join(words), "misspelling"
        r = rng.random()
        if r < 0.03:
            text = f"{text} {rng.choice(_EXTRA_WORDS_AFTER)}"
        elif r < 0.045:
            text = f"{rng.choice(_EXTRA_WORDS_BEFORE)} {text}"
        elif r < 0.06 and intent.phrase and (intent.brand or intent.attribute) and text.endswith(intent.phrase):
            text = f"{intent.phrase} {text[: -len(intent.phrase)].strip()}"
        if rng.random() < 0.03:
            text = text[:1].upper() + text[1:]
        if normalize_query(text) in self.blocked:
            return intent.key, "canonical"
        return text, kind

    def page(self, intent: _Intent, text: str, kind: str, rng: random.Random) -> list[tuple[int, int]]:
        """What the simulated store shows for a search: ``(product, true grade)`` in ranked order."""
        n = self.cfg.page_size
        quality = {"canonical": 0.65, "synonym": 0.4, "misspelling": 0.25}[kind]
        grade3, grade2 = intent.pools or ([], [])
        taken: dict[int, float] = {}

        def draw(pool: Sequence[int], k: int, base: float, accept: Callable[[int], bool] | None = None) -> None:
            size, tries, got = len(pool), 0, 0
            while got < k and size and tries < 4 * k + 8:
                tries += 1
                j = pool[int(size * rng.random() ** 1.6)]
                if j in taken or (accept is not None and not accept(j)):
                    continue
                taken[j] = base + rng.gauss(0, 1.0)
                got += 1

        draw(grade3, sum(rng.random() < quality for _ in range(n)), 2.0)
        draw(grade2, sum(rng.random() < 0.35 for _ in range(n - len(taken))), 1.4)
        if intent.aisle_set:
            aisle = rng.choice(sorted(intent.aisle_set))
            k = sum(rng.random() < 0.3 for _ in range(n - len(taken)))
            draw(self.by_aisle[aisle], k, 0.8, lambda j: self.p_type[j] not in intent.type_set)
        tokens = [w for w in _tokens(text) if w in self.by_token]
        if tokens:
            k = sum(rng.random() < 0.5 for _ in range(n - len(taken)))
            for _ in range(k):
                draw(self.by_token[rng.choice(tokens)], 1, 1.4, lambda j: self.grade(intent, j) == 0)
        draw(self.live_by_pop, n - len(taken), 0.0)
        order = sorted(taken, key=lambda j: (-taken[j], j))
        return [(j, self.grade(intent, j)) for j in order[:n]]

    def simulate(self) -> None:
        cfg, rng = self.cfg, self.rng("log")
        span = self.log_end - self.t0 - 4 * 3600
        # Sessions: one to several searches each; start times spread over the log period, busier in the evening.
        sizes = []
        total = 0
        while total < cfg.n_searches:
            size = 1
            while rng.random() < 0.5 and size < 8:
                size += 1
            size = min(size, cfg.n_searches - total)
            sizes.append(size)
            total += size
        hours = list(_cumsum(_HOURS))
        starts = []
        for _ in sizes:
            day = rng.randrange(max(1, span // 86400))
            hour = bisect.bisect_right(hours, rng.random() * hours[-1])
            starts.append(self.t0 + day * 86400 + hour * 3600 + rng.randrange(3600))
        starts.sort()
        # Showcase searches replace the first search of randomly chosen sessions.
        showcase: dict[int, tuple[_Intent, str]] = {}
        by_key = {i.key: i for i in self.live}
        slots = rng.sample(range(len(sizes)), min(len(sizes), len(_SHOWCASE)))
        for slot, (key, form) in zip(slots, _SHOWCASE, strict=False):
            if key in by_key and normalize_query(form) not in self.blocked:
                showcase[slot] = (by_key[key], form)
        rows: list[tuple[int, int, int, str, int, str, int, int]] = []
        self.query_intents: dict[str, str] = {}
        searches = zero_click = unstocked = 0
        attract = (0.08, 0.12, 0.22, 0.42)
        cart_rate = (0.02, 0.1, 0.2, 0.4)
        buy_rate = (0.3, 0.5, 0.6, 0.7)
        for s, (size, start) in enumerate(zip(sizes, starts, strict=True)):
            t = start
            seq = 0
            cart: list[tuple[str, int, int, int]] = []
            retype: tuple[_Intent, str] | None = None
            for q in range(size):
                if q == 0 and s in showcase:
                    intent, text = showcase[s]
                    kind = "canonical" if text == intent.key else "synonym"
                elif retype is not None:
                    (intent, text), kind = retype, "canonical"
                elif rng.random() < _UNSTOCKED_SHARE and self.unstocked:
                    pick = rng.random() * self.unstocked_cum[-1]
                    intent = self.unstocked[bisect.bisect_right(self.unstocked_cum, pick)]
                    text, kind = intent.key, "canonical"
                else:
                    intent = self.live[bisect.bisect_right(self.live_cum, rng.random() * self.live_cum[-1])]
                    text, kind = self.surface(intent, rng)
                retype = None
                searches += 1
                unstocked += intent.kind == "unstocked"
                self.query_intents.setdefault(normalize_query(text), intent.key)
                shown = self.page(intent, text, kind, rng)
                depth = 4
                while depth < len(shown) and rng.random() < 0.5:
                    depth += 1
                for pos, (j, g) in enumerate(shown[:depth], start=1):
                    rows.append((t, s, seq, text, j, "impression", pos, g))
                    seq += 1
                clicks = 0
                for pos, (j, g) in enumerate(shown[:depth], start=1):
                    if rng.random() < attract[g] / pos**0.7:
                        t += rng.randint(3, 40)
                        rows.append((t, s, seq, text, j, "click", pos, g))
                        seq += 1
                        clicks += 1
                        if rng.random() < cart_rate[g]:
                            t += rng.randint(5, 60)
                            rows.append((t, s, seq, text, j, "add_to_cart", pos, g))
                            seq += 1
                            cart.append((text, j, pos, g))
                if not clicks:
                    zero_click += 1
                    if kind != "canonical" and q + 1 < size and rng.random() < 0.5:
                        retype = (intent, intent.key)
                t += rng.randint(10, 120)
            if cart:
                t += rng.randint(60, 900)
                for text, j, pos, g in cart:
                    if rng.random() < buy_rate[g]:
                        rows.append((t, s, seq, text, j, "purchase", pos, g))
                        seq += 1
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        ids = [p.product_id for p in self.products]
        stamp_cache: dict[int, str] = {}
        self.events = []
        self.event_grades = []
        for ts, s, _, text, j, event, pos, g in rows:
            stamp = stamp_cache.get(ts)
            if stamp is None:
                stamp = stamp_cache[ts] = _iso(ts)
            self.events.append(LogEvent(text, ids[j], event, 1, pos, f"S{s + 1:07d}", stamp))
            self.event_grades.append(g)
        self.n_sessions = len(sizes)
        self.n_searches = searches
        self.zero_click = zero_click
        self.n_unstocked = unstocked

    # ---- judgements -----------------------------------------------------------------------------------------
    def judge(self) -> None:
        rng = self.rng("judgements")
        ids = [p.product_id for p in self.products]
        used: set[str] = set()
        rows: list[tuple[str, str, float]] = []
        self.judged_queries = 0
        self.cold_queries = self.cold_only_queries = 0
        n_products = len(self.products)
        for intent in self.heldout:
            grades: dict[int, int] = {}
            if intent.types:
                members = [j for t in intent.types for j in self.all_by_type[t]]
            else:
                members = list(self.all_by_brand[self.brands_index[intent.brand]])
            grade2 = []
            for j in members:
                g = self.grade(intent, j)
                if g == 3:
                    grades[j] = 3
                elif g == 2:
                    grade2.append(j)
            if not grades:  # pragma: no cover - intents are made from existing products
                continue
            for j in _sample(grade2, 40, rng):
                grades[j] = 2
            related = [j for a in sorted(intent.aisle_set) for j in self.all_by_aisle[a] if j not in grades]
            related += [j for t in sorted(intent.related) for j in self.all_by_type[t]]
            for j in _sample([j for j in related if self.grade(intent, j) == 1], 15, rng):
                grades.setdefault(j, 1)
            near = self._near_misses(intent)
            for j in _sample([j for j in near if self.grade(intent, j) == 0], 8, rng):
                grades.setdefault(j, 0)
            lexical = [j for w in _tokens(intent.key) for j in self.all_by_token.get(w, [])[:200]]
            for j in _sample([j for j in dict.fromkeys(lexical) if self.grade(intent, j) == 0], 4, rng):
                grades.setdefault(j, 0)
            added = 0
            for _ in range(40):
                if added >= 8:
                    break
                j = rng.randrange(n_products)
                if j not in grades and self.grade(intent, j) == 0:
                    grades[j] = 0
                    added += 1
            queries = [intent.key]
            alternatives = [f for f, _ in intent.forms if f not in used]
            if alternatives and rng.random() < 0.35:
                queries.append(rng.choice(alternatives))
            cold3 = sum(1 for j, g in grades.items() if g == 3 and self.p_cold[j])
            n3 = sum(1 for g in grades.values() if g == 3)
            ordered = sorted(grades.items(), key=lambda item: (-item[1], ids[item[0]]))
            for query in queries:
                if query in used:
                    continue
                used.add(query)
                self.judged_queries += 1
                self.cold_queries += cold3 > 0
                self.cold_only_queries += cold3 == n3
                rows.extend((query, ids[j], float(g)) for j, g in ordered)
        self.judgements = rows

    def _near_misses(self, intent: _Intent) -> list[int]:
        """Products that share a word with the query but are a different intent: tortilla chips for "tortillas"."""
        if not intent.types:
            return [j for w in _tokens(intent.brand) for j in self.all_by_token.get(w, [])[:200]]
        types: set[int] = set()
        for word in _tokens(intent.phrase):
            types.update(self.types_by_token.get(word, ()))
        for t in intent.types:
            types.update(self.extra_confusables.get(t, ()))
        types = {t for t in types if self.type_aisle[t] not in intent.aisle_set and t not in intent.type_set}
        return [j for t in sorted(types) for j in self.all_by_type[t]]

    # ---- all of it --------------------------------------------------------------------------------------------
    def run(self) -> DemoStore:
        self.make_brands()
        self.make_products()
        self.brands_index = {b.name: i for i, b in enumerate(self.brands)}
        self.index_products()
        self.make_intents()
        self.split_intents()
        self.simulate()
        self.judge()
        events = Counter(e.event for e in self.events)
        judged = Counter(g for _, _, g in self.judgements)
        used_types = {self.p_type[j] for j in range(len(self.products))}
        summary: dict[str, Any] = {
            "seed": self.cfg.seed,
            "products": len(self.products),
            "departments": len({self.types[t].department for t in used_types}),
            "aisles": len({self.type_aisle[t] for t in used_types}),
            "product_types": len(used_types),
            "brands": len({self.p_brand[j] for j in range(len(self.products))}),
            "new_brands": sum(1 for b in self.brands if b.new),
            "cold_start_products": sum(self.p_cold),
            "events": {e: events.get(e, 0) for e in EVENTS},
            "events_total": len(self.events),
            "searches": self.n_searches,
            "sessions": self.n_sessions,
            "zero_click_searches": self.zero_click,
            "unstocked_searches": self.n_unstocked,
            "distinct_queries": len({normalize_query(e.query) for e in self.events}),
            "intents": len(self.ranked),
            "heldout_intents": len(self.heldout),
            "judged_queries": self.judged_queries,
            "judged_queries_with_cold_start": self.cold_queries,
            "judged_queries_cold_start_only": self.cold_only_queries,
            "judgements": len(self.judgements),
            "judgements_by_grade": {str(g): judged.get(float(g), 0) for g in (3, 2, 1, 0)},
            "log_start": _iso(self.t0),
            "log_end": _iso(self.log_end),
        }
        return DemoStore(self.products, self.events, self.judgements, self.event_grades, summary, self.query_intents)


def _cumsum(values: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def _sample(items: Sequence[int], k: int, rng: random.Random) -> list[int]:
    unique = list(dict.fromkeys(items))
    return unique if len(unique) <= k else rng.sample(unique, k)


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def build_demo_store(config: DemoConfig | None = None) -> DemoStore:
    """Generate a demo store in memory (see the module docstring for what it models).

    Args:
        config: The settings; defaults to :class:`DemoConfig` ().

    Raises:
        ConfigError: a setting is out of range.
    """
    config = config or DemoConfig()
    config.validate()
    return _Generator(config).run()


def generate_demo_store(out_dir: str | Path, config: DemoConfig | None = None) -> dict[str, Any]:
    """Generate a demo grocery store and write ``catalog.csv``, ``log.csv`` and ``judgements.csv`` to ``out_dir``.

    Each file is written atomically. The same seed and settings give byte-identical files.

    Args:
        out_dir: The folder (created if missing).
        config: The settings; defaults to :class:`DemoConfig` ().

    Returns:
        A summary: counts of products, departments, aisles, product types, brands, cold-start products, events by
        type, searches, sessions, distinct queries, intents, held-out intents, judged queries and judgements, and
        the paths of the files.

    Raises:
        ConfigError: a setting is out of range.
    """
    store = build_demo_store(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.csv" for name in ("catalog", "log", "judgements")}
    write_catalog(store.products, files["catalog"])
    write_log(store.events, files["log"])
    write_judgements(store.judgements, files["judgements"])
    return {**store.summary, "files": {name: str(path) for name, path in files.items()}}
