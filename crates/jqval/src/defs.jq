# Conversion
def totype(p; e): if p then . else fromjson | if p then . else e end end;
def tonumber : totype(isnumber ; error("cannot parse as number" ));
def toboolean: totype(isboolean; error("cannot parse as boolean"));

# Arrays
def transpose: [range([.[] | length] | max) as $i | [.[][$i]]];

# Indexing
def in(xs)    : . as $x | xs | has     ($x);
def inside(xs): . as $x | xs | contains($x);
def  index($i): indices($i)[ 0];
def rindex($i): indices($i)[-1];

# Formatting
def @json: tojson;


# Exact rounding (assay): `round_to(2)` rounds half to even; floor, ceil and round stay exact on
# decimals and big integers instead of going through binary floating point.
def round_to($scale): round_to($scale; "half_even");
def floor: round_to(0; "floor");
def ceil: round_to(0; "ceiling");
def round: round_to(0; "half_up");
