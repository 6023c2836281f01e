"""The demo shop's vocabulary: category names, their median prices, and the words of item titles."""

from __future__ import annotations

import numpy as np

# name, median price, category-specific modifiers, nouns
# fmt: off
CATALOGUE: tuple[tuple[str, float, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Kitchen", 35.0, ("Steel", "Cast Iron", "Ceramic", "Bamboo", "Copper", "Non-Stick"),
     ("Frying Pan", "Chef's Knife", "Cutting Board", "Saucepan", "Mixing Bowl", "Kettle", "Spatula",
      "Colander", "Stockpot", "Whisk", "Grater", "Teapot")),
    ("Outdoor", 80.0, ("Nylon", "Aluminium", "Ripstop", "Canvas", "Titanium", "Waterproof"),
     ("Tent", "Sleeping Bag", "Camping Chair", "Lantern", "Hammock", "Backpack", "Cooler Box",
      "Hiking Poles", "Camp Stove", "Water Filter")),
    ("Books", 16.0, ("Illustrated", "Paperback", "Hardcover", "Annotated", "Collector's", "Pocket"),
     ("Cookbook", "Thriller", "Mystery Novel", "Biography", "Atlas", "Poetry Collection", "Field Guide",
      "Graphic Novel", "Travel Guide", "History of Europe")),
    ("Electronics", 90.0, ("Wireless", "Noise-Cancelling", "Portable", "Smart", "Fast-Charge", "USB-C"),
     ("Headphones", "Bluetooth Speaker", "Power Bank", "Charger", "Smartwatch", "Webcam", "Keyboard",
      "Mouse", "USB Hub", "E-Reader")),
    ("Garden", 30.0, ("Terracotta", "Galvanised", "Recycled", "Ergonomic", "Stainless", "Wooden"),
     ("Watering Can", "Pruning Shears", "Planter", "Garden Hose", "Trowel", "Rake", "Bird Feeder",
      "Seed Tray", "Compost Bin", "Wheelbarrow")),
    ("Toys", 25.0, ("Wooden", "Magnetic", "Musical", "Glow-in-the-Dark", "Soft", "Remote-Control"),
     ("Puzzle", "Building Set", "Plush Bear", "Toy Car", "Kite", "Doll House", "Yo-Yo", "Train Set",
      "Marble Run", "Spinning Top")),
    ("Sports", 40.0, ("Non-Slip", "Adjustable", "Carbon", "Neoprene", "Foldable", "Reflective"),
     ("Yoga Mat", "Dumbbell Set", "Jump Rope", "Tennis Racket", "Football", "Resistance Band",
      "Water Bottle", "Gym Bag", "Foam Roller", "Cycling Gloves")),
    ("Beauty", 22.0, ("Hydrating", "Vegan", "Fragrance-Free", "Herbal", "Travel-Size", "Matte"),
     ("Face Serum", "Lip Balm", "Hair Dryer", "Makeup Brush Set", "Hand Cream", "Shampoo", "Nail Kit",
      "Perfume", "Sunscreen", "Face Mask")),
    ("Home Decor", 35.0, ("Linen", "Marble", "Rattan", "Brass", "Velvet", "Hand-Painted"),
     ("Table Lamp", "Wall Clock", "Vase", "Throw Pillow", "Picture Frame", "Scented Candle", "Mirror",
      "Rug", "Curtains", "Bookends")),
    ("Furniture", 220.0, ("Oak", "Walnut", "Upholstered", "Metal", "Extendable", "Stackable"),
     ("Armchair", "Bookshelf", "Coffee Table", "Desk", "Bar Stool", "Bed Frame", "Side Table",
      "Wardrobe", "Sofa", "Dining Chair")),
    ("Clothing", 35.0, ("Cotton", "Merino", "Denim", "Fleece", "Organic", "Slim-Fit"),
     ("T-Shirt", "Hoodie", "Jeans", "Rain Jacket", "Sweater", "Scarf", "Chinos", "Dress", "Cardigan",
      "Polo Shirt")),
    ("Shoes", 75.0, ("Leather", "Suede", "Mesh", "Waterproof", "Cushioned", "Canvas"),
     ("Running Shoes", "Sneakers", "Hiking Boots", "Sandals", "Loafers", "Slippers", "Chelsea Boots",
      "Trainers")),
    ("Jewelry", 60.0, ("Silver", "Gold-Plated", "Pearl", "Rose Gold", "Gemstone", "Engraved"),
     ("Necklace", "Bracelet", "Ring", "Earrings", "Pendant", "Anklet", "Brooch", "Cufflinks")),
    ("Pet Supplies", 28.0, ("Orthopedic", "Chew-Proof", "Washable", "Self-Cleaning", "Padded", "Reflective"),
     ("Dog Bed", "Cat Tree", "Leash", "Pet Bowl", "Chew Toy", "Litter Box", "Scratching Post",
      "Pet Carrier")),
    ("Baby", 45.0, ("Organic", "Anti-Colic", "Foldable", "Hypoallergenic", "Muslin", "Convertible"),
     ("Stroller", "Baby Monitor", "High Chair", "Bottle Set", "Changing Mat", "Teether", "Baby Blanket",
      "Play Mat")),
    ("Office", 18.0, ("Leather-Bound", "Refillable", "Recycled", "Magnetic", "Dotted", "Desktop"),
     ("Notebook", "Fountain Pen", "Desk Organiser", "Stapler", "Planner", "Whiteboard", "Desk Lamp",
      "File Folder")),
    ("Music", 95.0, ("Acoustic", "Electric", "Beginner", "Studio", "Rosewood", "Handmade"),
     ("Guitar", "Ukulele", "Drum Pad", "Harmonica", "Guitar Strings", "Metronome", "Microphone",
      "Digital Piano")),
    ("Games", 30.0, ("Strategy", "Family", "Two-Player", "Cooperative", "Retro", "Deluxe Edition"),
     ("Board Game", "Game Controller", "Card Game", "Chess Set", "Dice Set", "Gaming Headset",
      "Video Game", "Party Game")),
    ("Grocery", 9.0, ("Organic", "Fair-Trade", "Artisan", "Roasted", "Spiced", "Single-Origin"),
     ("Coffee Beans", "Green Tea", "Olive Oil", "Dark Chocolate", "Honey", "Pasta", "Granola",
      "Hot Sauce")),
    ("Health", 30.0, ("Rechargeable", "Sugar-Free", "Digital", "Portable", "Plant-Based", "Clinical"),
     ("Vitamin D", "Protein Powder", "First Aid Kit", "Thermometer", "Massage Gun", "Heating Pad",
      "Pill Organiser", "Fitness Tracker")),
    ("Automotive", 40.0, ("Cordless", "Heavy-Duty", "Universal", "All-Weather", "Magnetic", "Digital"),
     ("Car Vacuum", "Dash Cam", "Phone Mount", "Jump Starter", "Tyre Inflator", "Seat Cover",
      "Floor Mats", "Car Charger")),
    ("Tools", 55.0, ("Cordless", "Magnetic", "Chrome", "Insulated", "Laser", "Folding"),
     ("Drill", "Hammer", "Screwdriver Set", "Tape Measure", "Socket Set", "Spirit Level",
      "Utility Knife", "Workbench")),
    ("Bath", 25.0, ("Cotton", "Bamboo", "Quick-Dry", "Stainless", "Teak", "Waffle"),
     ("Bath Towel", "Shower Curtain", "Bath Mat", "Soap Dispenser", "Toothbrush Holder", "Bathrobe",
      "Shower Head", "Towel Rail")),
    ("Bedding", 60.0, ("Linen", "Percale", "Down", "Cooling", "Flannel", "Silk"),
     ("Duvet", "Pillow", "Fitted Sheet", "Blanket", "Mattress Topper", "Pillowcase Set", "Quilt",
      "Weighted Blanket")),
    ("Art Supplies", 20.0, ("Watercolour", "Acrylic", "Artist-Grade", "Pastel", "Archival", "Student"),
     ("Sketchbook", "Paint Set", "Easel", "Brush Set", "Coloured Pencils", "Canvas Board", "Clay Kit",
      "Palette")),
    ("Travel", 50.0, ("Carry-On", "Hard-Shell", "Packable", "RFID-Blocking", "Expandable", "Compact"),
     ("Suitcase", "Travel Pillow", "Packing Cubes", "Passport Holder", "Duffel Bag", "Luggage Tag",
      "Toiletry Bag", "Travel Adapter")),
    ("Photography", 70.0, ("Carbon", "Magnetic", "LED", "Weatherproof", "Professional", "Mini"),
     ("Tripod", "Camera Bag", "Lens Filter", "Ring Light", "Memory Card", "Camera Strap", "Gimbal",
      "Light Stand")),
    ("Lighting", 40.0, ("Dimmable", "Solar", "Smart", "Industrial", "Paper", "Crystal"),
     ("Pendant Light", "Floor Lamp", "String Lights", "Night Light", "Spotlight", "Wall Sconce",
      "Reading Light", "Light Bulb Set")),
)

ADJECTIVES = (
    "Compact", "Classic", "Deluxe", "Essential", "Premium", "Modern", "Vintage", "Lightweight",
    "Everyday", "Sturdy", "Minimalist", "Rustic", "Sleek", "Handcrafted", "Eco", "Pro", "Mini",
    "Large", "Cozy", "Bold", "Nordic", "Urban", "Signature", "Family", "Elegant", "Durable",
)
# fmt: on

MAX_CATEGORIES = len(CATALOGUE)


def category_names(n_categories: int) -> list[str]:
    return [CATALOGUE[c][0] for c in range(n_categories)]


def median_prices(n_categories: int) -> np.ndarray:
    """The median price of each of the first ``n_categories`` categories."""
    return np.array([CATALOGUE[c][1] for c in range(n_categories)])


def draw_titles(rng: np.random.Generator, item_category: np.ndarray) -> np.ndarray:
    """"<adjective> <modifier> <noun>" per item, the modifier and noun from the item's category."""
    n = len(item_category)
    adjectives = np.array(ADJECTIVES, dtype=object)[rng.integers(0, len(ADJECTIVES), n)]
    pick_m = rng.random(n)
    pick_n = rng.random(n)
    titles = np.empty(n, dtype=object)
    for c in np.unique(item_category):
        where = item_category == c
        _, _, modifiers, nouns = CATALOGUE[c]
        mods = np.array(modifiers, dtype=object)[(pick_m[where] * len(modifiers)).astype(int)]
        nns = np.array(nouns, dtype=object)[(pick_n[where] * len(nouns)).astype(int)]
        titles[where] = adjectives[where] + " " + mods + " " + nns
    return titles
