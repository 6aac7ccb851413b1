"""Name pools by naming culture, with their spelling variants.

Each culture has pools of male and female given names and of family names, listed from
most to least common; draws follow a Zipf law over that order, so a few names (Mohamed,
Ahmed, Wang) are very common and agree by chance between different people, as in real
registers. Spelling variants (``spelling.py``) come from explicit variant groups (Mohamed
/ Mohammed / Muhammad …), from a culture's romanisation rules (ou/u, kh/ch, dj/j, sj/sh,
-y/-i), and for Cyrillic names from four romanisation systems.

Markers in the pools: a space or hyphen is a compound boundary written split by default
(``El Amrani`` → merged variant ``Elamrani``); ``~`` is one written merged by default
(``Abdel~kader`` → ``Abdelkader``, split variant ``Abdel Kader``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from recapture.synthetic.spelling import (
    canonical_form,
    compound_alternative,
    render,
    spelling_variants,
)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# --------------------------------------------------------------------------------------
# Pools. Order = frequency rank. Slavic pools are Cyrillic and romanised on use.
# --------------------------------------------------------------------------------------
POOLS: dict[str, dict[str, list[str]]] = {
    "maghrebi": {
        "male": _split(
            "Mohamed, Ahmed, Youssef, Said, Rachid, Mustapha, Abdel~kader, Karim, Hassan, Omar, "
            "Khalid, Brahim, Abdel~lah, Ali, Mourad, Nordin, Samir, Hamid, Driss, Hicham, Yassine, "
            "Bilal, Abdel~ilah, Mehdi, Nabil, Tarik, Jamal, Redouane, Abderrahim, Aziz, Hamza, "
            "Ismail, Anouar, Noureddine, Mounir, Adil, Fouad, Abdelaziz, Lahcen, Mimoun, "
            "Abdelhak, Younes, Zakaria, Soufiane, Amine, Ayoub, Othmane, Badr, Hakim, Rida, "
            "Kamal, Aissa, Farid, Salah, Larbi, Abdel~majid, Djamel, Sofiane, Walid, Hocine, "
            "Lotfi, Nassim, Slimane, Tayeb, Boualem, Mokhtar, Khaled, Fethi, Chokri, Mabrouk"
        ),
        "female": _split(
            "Fatima, Khadija, Aicha, Malika, Naima, Rachida, Saida, Zineb, Nadia, Hafida, Samira, "
            "Latifa, Meryem, Karima, Souad, Hanane, Fatiha, Najat, Amina, Zahra, Siham, Loubna, "
            "Houria, Nora, Imane, Hayat, Ilham, Mina, Zoubida, Yamina, Djamila, Nassima, Samia, "
            "Leila, Salima, Hakima, Farida, Khaoula, Sanae, Ouafae, Warda, Jamila, Hasna, Touria"
        ),
        "family": _split(
            "El Amrani, Benali, El Idrissi, Bouzid, El Alaoui, Haddad, Ait Ali, Belhaj, "
            "Bouazza, El Mansouri, Amrani, Ben Ahmed, Tahiri, Chaoui, Benjelloun, Ouali, "
            "Bakkali, El Khattabi, Azzouzi, Boukhari, Mokhtari, El Ouardi, Zerouali, Saidi, "
            "Boumediene, Kaddouri, Bensaid, Ziani, Lahlou, El Fassi, Cherkaoui, Hamdaoui, "
            "Ouahbi, Belkacem, Mansouri, Touati, Benyoucef, Bouchama, Mahjoub, Rahmouni, "
            "El Hamdaoui, Bennani, Ait Ouali, Ouazzani, El Yousfi, Serghini, Hajji, Messaoudi, "
            "Belarbi, Taibi, Boudiaf, Meziane, Khelifi, Hadjadj, Djebbar, Benabdallah, "
            "Ben Mohamed, Abdellaoui, Akhrif, El Bouzidi, Azougagh, Boulahrouz, Amghar, "
            "Ouled Ali, Belghiti, Dahmani, Chentouf, Boussaid, El Hadri, Laaroussi, Tazi, "
            "Benchekroun, Lamrani, Ait Said, El Harrak, Moussaoui, Bouhaddou, Berrada, Kasmi, "
            "Oulad Haj, Bouallou, Nafai, Sebbar, Chahid, Ben Salah, Jebali, Trabelsi, Gharbi, "
            "Ben Amor, Ayari, Hammami, Mejri, Zouari, Ben Youssef, Hamdi, Dridi, Sassi"
        ),
    },
    "mashriq": {
        "male": _split(
            "Mohammed, Ahmed, Ali, Hussein, Mahmoud, Omar, Khaled, Hassan, Ibrahim, Mustafa, "
            "Abdul~lah, Yousef, Haider, Abbas, Karim, Sami, Tariq, Fadi, Bassam, Nasser, "
            "Rami, Walid, Majid, Salim, Jasim, Saif, Amjad, Firas, Ammar, Zaid, Basel, Hamza, "
            "Abdul~rahman, Osama, Muhannad, Qasim, Raed, Emad, Ayman, Mazen, Adel, Anas, Yasser"
        ),
        "female": _split(
            "Fatima, Maryam, Zainab, Noor, Huda, Rania, Hanan, Aya, Sara, Layla, Amal, Reem, "
            "Dalia, Rasha, Samar, Nadia, Lina, Iman, Mona, Heba, Suha, Shaima, Hiba, Asma, "
            "Ghada, Nour, Yasmin, Rahaf, Duaa, Salma"
        ),
        "family": _split(
            "Al-Jabouri, Hussein, Al-Obaidi, Ali, Hassan, Al-Saadi, Ibrahim, Mahmoud, Abdullah, "
            "Al-Tamimi, Khalil, Al-Rubaie, Haddad, Al-Dulaimi, Saleh, Al-Shammari, Kareem, "
            "Al-Zubaidi, Mansour, Nasser, Othman, Al-Khatib, Hamdan, Darwish, Suleiman, "
            "Al-Ahmad, Youssef, Al-Hassan, Qasim, Al-Masri, Abbas, Jaber, Al-Kurdi, Rashid, "
            "Al-Hakim, Shaker, Farouk, Al-Najjar, Mustafa, Al-Sayed, Aziz, Mohsen, Al-Ani, "
            "El Sayed, Abdel~rahman, Fahmy, Hamed, Abdel~aziz, Gaber, Shehata, Mostafa"
        ),
    },
    "persian": {
        "male": _split(
            "Mohammad, Ali, Hossein, Reza, Ahmad, Mahdi, Hassan, Amir, Abdul, Mostafa, Javad, "
            "Hamid, Saeed, Mehdi, Morteza, Sajjad, Jawad, Nasir, Farid, Rahim, Karim, Shafiq, "
            "Wahid, Habib, Zabihullah, Noorullah, Ghulam, Omid, Behrouz, Davood, Masoud, "
            "Farhad, Kamran, Babak, Hamed, Navid, Bashir, Rohullah, Mirwais, Samiullah"
        ),
        "female": _split(
            "Fatemeh, Zahra, Maryam, Masoumeh, Mahboubeh, Sakineh, Zeinab, Leila, Somayeh, "
            "Parisa, Shirin, Farzaneh, Nasrin, Mina, Parwana, Marzia, Freshta, Roya, Shabnam, "
            "Samira, Nazanin, Azadeh, Mahsa, Nilufar, Gulalai, Malalai, Homa, Tahmina"
        ),
        "family": _split(
            "Ahmadi, Mohammadi, Hosseini, Rahimi, Karimi, Hashemi, Sultani, Rezaei, Nazari, "
            "Jafari, Amiri, Hakimi, Azizi, Haidari, Sadeghi, Mousavi, Noori, Rahmani, "
            "Sharifi, Ghafoori, Yousufi, Akbari, Safi, Popal, Stanikzai, Wardak, Durrani, "
            "Ghorbani, Mohseni, Taheri, Kazemi, Rostami, Habibi, Nikzad, Samadi, Jalali, "
            "Qaderi, Faizi, Barakzai, Nazari, Sediqi, Zaheer, Akbarzadeh, Ebrahimi, Hamidi"
        ),
    },
    "turkish": {
        "male": _split(
            "Mehmet, Mustafa, Ahmet, Ali, Hüseyin, Hasan, İbrahim, İsmail, Osman, Yusuf, "
            "Murat, Ömer, Ramazan, Halil, Süleyman, Abdullah, Mahmut, Recep, Salih, Fatih, "
            "Kadir, Emre, Hakan, Kemal, Orhan, Serkan, Burak, Erkan, Gökhan, Cengiz, Şükrü, "
            "Selim, Tuncay, Yaşar, Muharrem, Ercan, Özcan, Çetin, Doğan, Uğur"
        ),
        "female": _split(
            "Fatma, Ayşe, Emine, Hatice, Zeynep, Elif, Meryem, Şerife, Sultan, Zehra, Hanife, "
            "Merve, Özlem, Esra, Gülsüm, Hülya, Derya, Songül, Sevgi, Yasemin, Gül, Tuğba, "
            "Büşra, Nurcan, Dilek, Filiz, Şükran, Çiğdem"
        ),
        "family": _split(
            "Yılmaz, Kaya, Demir, Şahin, Çelik, Yıldız, Yıldırım, Öztürk, Aydın, Özdemir, "
            "Arslan, Doğan, Kılıç, Aslan, Çetin, Kara, Koç, Kurt, Özkan, Şimşek, Polat, "
            "Özcan, Korkmaz, Çakır, Erdoğan, Yavuz, Can, Acar, Şen, Aktaş, Güler, Yalçın, "
            "Güneş, Bozkurt, Bulut, Keskin, Ünal, Turan, Gül, Özer, Işık, Kaplan, Avcı, "
            "Sarı, Tekin, Taş, Köse, Yüksel, Ateş, Aksoy"
        ),
    },
    "west_african": {
        "male": _split(
            "Ibrahima, Mamadou, Abdoulaye, Mohamed, Ousmane, Alpha, Amadou, Moussa, Lamine, "
            "Kwame, Kofi, Kwabena, Yaw, Kwaku, Emmanuel, Samuel, Daniel, John, Joseph, Michael, "
            "Chukwu~emeka, Oluwa~seun, Chinedu, Ifeanyi, Tunde, Babajide, Obinna, Uche, "
            "Sekou, Abdul, Alhassan, Sulemana, Issa, Bakary, Lansana, Foday, Augustine, "
            "Prince, Godfred, Ebenezer, Festus, Olumide, Yusuf, Saidu"
        ),
        "female": _split(
            "Fatoumata, Mariama, Aminata, Kadiatou, Hawa, Aissatou, Adjoa, Akosua, Abena, Ama, "
            "Efua, Grace, Mercy, Blessing, Joy, Patience, Comfort, Gifty, Esther, Faith, "
            "Chioma, Ngozi, Adaeze, Funmilayo, Oluwa~kemi, Nafisatu, Isatu, Kumba, Rugiatu"
        ),
        "family": _split(
            "Diallo, Bah, Barry, Sow, Camara, Conteh, Kamara, Sesay, Koroma, Jalloh, Kanu, "
            "Mensah, Owusu, Boateng, Asante, Osei, Appiah, Agyeman, Acheampong, Amoah, Ofori, "
            "Okafor, Okonkwo, Adeyemi, Eze, Nwachukwu, Ogunleye, Balogun, Obi, Ibrahim, "
            "Musa, Abubakar, Bello, Traore, Toure, Keita, Coulibaly, Konate, Sylla, Cisse, "
            "Fofana, Kouyate, Soumah, Bangura, Turay, Mansaray, Fofanah, Kargbo, Danso, Ansah"
        ),
    },
    "horn": {
        "male": _split(
            "Mohamed, Abdi, Ahmed, Yonas, Tesfay, Dawit, Samuel, Mehari, Yohannes, Haile, "
            "Abdirahman, Hassan, Kidane, Bereket, Filmon, Biniam, Amanuel, Daniel, Tekle, "
            "Mulugeta, Getachew, Abdullahi, Omar, Ali, Yusuf, Mussie, Robel, Yemane, Awet"
        ),
        "female": _split(
            "Helen, Senait, Selam, Hiwet, Luwam, Saba, Hana, Ruth, Meron, Mebrat, Tsega, "
            "Fatuma, Hodan, Amina, Sahra, Faduma, Halima, Asha, Hawa, Nasra, Yordanos, Winta"
        ),
        "family": _split(
            "Tesfay, Gebre~medhin, Haile, Kidane, Tekle, Abraha, Berhane, Gebre~hiwet, "
            "Weldemariam, Mehari, Habte, Negash, Yohannes, Ghebre~mariam, Tesfamariam, Asfaha, "
            "Mohamed, Ahmed, Hassan, Abdi, Ali, Omar, Warsame, Farah, Osman, Jama, Nur, Egal, "
            "Hersi, Abdullahi, Tadesse, Bekele, Alemu, Girma, Kebede, Mengistu, Wolde~giorgis"
        ),
    },
    "slavic": {
        "male": _split(
            "Александр, Сергей, Андрей, Дмитрий, Владимир, Алексей, Олег, Николай, Юрий, "
            "Игорь, Виктор, Михаил, Иван, Евгений, Василий, Максим, Роман, Артём, Денис, "
            "Павел, Вадим, Богдан, Тарас, Ярослав, Виталий, Руслан, Анатолий, Григорий"
        ),
        "female": _split(
            "Елена, Ольга, Наталья, Татьяна, Ирина, Светлана, Юлия, Анна, Оксана, Марина, "
            "Людмила, Екатерина, Галина, Мария, Виктория, Алёна, Валентина, Надежда, Жанна"
        ),
        "family": _split(
            "Шевченко, Коваленко, Бондаренко, Ткаченко, Кравченко, Иванов, Смирнов, Кузнецов, "
            "Попов, Васильев, Петров, Соколов, Михайлов, Новиков, Фёдоров, Морозов, Волков, "
            "Лебедев, Мельник, Шевчук, Поляков, Бойко, Коваль, Олейник, Павленко, Ковальчук, "
            "Зайцев, Лысенко, Марченко, Руденко, Савченко, Жуков, Журавлёв, Щербак, Хоменко, "
            "Чернов, Чайка, Яковлев, Юрченко, Захарченко"
        ),
    },
    "albanian": {
        "male": _split(
            "Arben, Ardit, Besnik, Dritan, Ervin, Florian, Gentian, Ilir, Klodian, Kristian, "
            "Arjan, Altin, Erion, Elvis, Fatmir, Gëzim, Bledar, Edmond, Artan, Shpëtim, "
            "Agron, Mergim, Valon, Blerim, Driton, Xhevdet, Ylli, Luan, Endrit, Sokol"
        ),
        "female": _split(
            "Elona, Anila, Blerina, Ermira, Mirela, Jonida, Klejda, Valbona, Arta, Drita, "
            "Xhenet, Fjolla, Besa, Lindita, Vjollca, Mimoza, Teuta, Rozafa"
        ),
        "family": _split(
            "Hoxha, Shehu, Leka, Gashi, Krasniqi, Berisha, Kola, Çela, Dervishi, Hysa, Muça, "
            "Marku, Gjoka, Prifti, Bajrami, Kelmendi, Morina, Rama, Zeqiri, Shala, Thaçi, "
            "Xhaferi, Dushku, Lika, Hasani, Bytyqi, Ibrahimi, Mehmeti, Sadiku, Halili"
        ),
    },
    "caucasus": {
        "male": _split(
            "Giorgi, Davit, Levan, Irakli, Zurab, Nika, Giga, Lasha, Tornike, Mamuka, Gocha, "
            "Hakob, Aram, Armen, Tigran, Gevorg, Arsen, Vardan, Karen, Narek, Rustam, Elchin, "
            "Rashad, Farid, Tural, Vugar"
        ),
        "female": _split(
            "Nino, Tamar, Mariam, Ketevan, Natia, Eka, Salome, Lela, Anahit, Lusine, Gayane, "
            "Armine, Hasmik, Aynur, Gunel, Leyla, Sevinj"
        ),
        "family": _split(
            "Beridze, Kapanadze, Gelashvili, Maisuradze, Giorgadze, Lomidze, Tsiklauri, "
            "Bolkvadze, Nozadze, Khutsishvili, Mamedov, Aliyev, Huseynov, Hasanov, Guliyev, "
            "Grigoryan, Harutyunyan, Sargsyan, Hovhannisyan, Khachatryan, Petrosyan, "
            "Vardanyan, Karapetyan, Avetisyan, Gevorgyan, Mkrtchyan, Tsereteli, Javakhishvili"
        ),
    },
    "chinese": {
        "male": _split(
            "Wei, Jun, Ming, Lei, Jian, Hao, Yong, Jie, Tao, Qiang, Xiao~ming, Zhi~qiang, "
            "Wen~bin, Jian~guo, Hai~tao, Guo~qiang, Jia~hao, Zhi~wei, Cheng, Bin, Peng, Feng"
        ),
        "female": _split(
            "Li, Fang, Na, Min, Jing, Yan, Hui, Xiu~ying, Gui~ying, Xiao~hong, Mei~ling, "
            "Li~na, Yu~lan, Hong, Ying, Xia, Lan, Juan"
        ),
        "family": _split(
            "Wang, Li, Zhang, Liu, Chen, Yang, Huang, Zhao, Wu, Zhou, Xu, Sun, Ma, Zhu, Hu, "
            "Guo, He, Lin, Gao, Luo, Zheng, Liang, Xie, Tang, Song, Deng, Feng, Han, Cao, Ye"
        ),
    },
    "south_asian": {
        "male": _split(
            "Mohammad, Muhammad, Rahul, Amit, Singh, Gurpreet, Harpreet, Rajesh, Sunil, Vijay, "
            "Imran, Asif, Kamran, Tariq, Ali, Usman, Abdul, Shahid, Rashid, Kamal, Rafiq, "
            "Sanjay, Anil, Manoj, Deepak, Suresh, Ravi, Arjun, Kumar, Nadeem, Faisal, Zahid, "
            "Mahmud, Habib, Jahangir, Sumon, Tharindu, Pradeep, Ramesh, Prakash"
        ),
        "female": _split(
            "Fatima, Ayesha, Priya, Pooja, Sunita, Anita, Kaur, Nasreen, Shabana, Rukhsana, "
            "Sadia, Farzana, Nusrat, Ruksana, Lakshmi, Kavita, Neha, Sapna, Nirmala, Sita"
        ),
        "family": _split(
            "Khan, Singh, Kumar, Ahmed, Hussain, Sharma, Patel, Shah, Ali, Malik, Iqbal, Butt, "
            "Chaudhry, Akhtar, Raza, Qureshi, Sheikh, Rahman, Islam, Hossain, Uddin, Miah, "
            "Chowdhury, Begum, Gupta, Verma, Reddy, Das, Perera, Fernando, Silva, Gurung, "
            "Thapa, Shrestha, Rana, Bhatti, Mirza, Siddiqui, Ansari, Javed"
        ),
    },
    "southeast_asian": {
        "male": _split(
            "Nguyen Van, Minh, Tuan, Hung, Duc, Thanh, Budi, Agus, Joko, Dedi, Rudi, Eko, "
            "Jose, Juan, Mark, John Paul, Michael, Ronald, Somchai, Anan"
        ),
        "female": _split(
            "Thi, Lan, Huong, Linh, Mai, Ngoc, Siti, Sri, Dewi, Ayu, Maria, Rosalie, "
            "Jennifer, Mary Grace, Lorna, Marites, Siriporn, Malee"
        ),
        "family": _split(
            "Nguyen, Tran, Le, Pham, Hoang, Phan, Vu, Dang, Bui, Do, Santoso, Wijaya, "
            "Saputra, Hidayat, Kusuma, Setiawan, Santos, Reyes, Cruz, Bautista, Garcia, "
            "Mendoza, Dela~cruz, Villanueva, Ramos, Aquino, Suwannarat, Srisuk"
        ),
    },
    "latin": {
        "male": _split(
            "José, Juan, Carlos, Luis, Jorge, Miguel, Pedro, Jesús, Francisco, Antonio, "
            "Manuel, Alejandro, Rafael, Andrés, Fernando, Ricardo, Diego, Eduardo, João, "
            "Paulo, Marcos, Lucas, Gustavo, Wilson, Edwin, Ramón, Héctor, Julio, Raúl, "
            "Ramdien, Sunil, Romeo, Errol, Roy"
        ),
        "female": _split(
            "María, Ana, Carmen, Rosa, Luz, Martha, Gloria, Sandra, Claudia, Patricia, "
            "Adriana, Yolanda, Sonia, Daniela, Juliana, Fernanda, Mariana, Gabriela, "
            "Josefina, Marisol, Yesenia, Wendy, Sharmila, Chantal"
        ),
        "family": _split(
            "González, Rodríguez, Pérez, García, Martínez, López, Hernández, Sánchez, Ramírez, "
            "Torres, Flores, Rivera, Gómez, Díaz, Reyes, Morales, Jiménez, Vargas, Castro, "
            "Ortiz, Silva, Santos, Oliveira, Souza, Pereira, Ferreira, Alves, Lima, Costa, "
            "De la Cruz, Del Río, Peña, Guzmán, Núñez, Ramdin, Sewnarain, Kromodimedjo, "
            "Pinas, Biswane, Van Dijk"
        ),
    },
    "english": {
        "male": _split(
            "James, John, Robert, Michael, William, David, Richard, Joseph, Thomas, Charles, "
            "Christopher, Daniel, Matthew, Anthony, Mark, Steven, Paul, Andrew, Kenji, Thabo, "
            "Sipho, Hiroshi"
        ),
        "female": _split(
            "Mary, Patricia, Jennifer, Linda, Elizabeth, Barbara, Susan, Jessica, Sarah, Karen, "
            "Nancy, Lisa, Emily, Michelle, Yuki, Naledi, Lerato"
        ),
        "family": _split(
            "Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Anderson, Taylor, "
            "Thomas, Moore, Martin, Jackson, Thompson, White, Harris, Clark, Lewis, Walker, "
            "Nkosi, Dlamini, Van der Merwe, Botha, Tanaka, Suzuki, O'Brien, MacDonald"
        ),
    },
}

#: Share of people of each culture with a second given name.
SECOND_GIVEN_SHARE: dict[str, float] = {
    "maghrebi": 0.10,
    "mashriq": 0.10,
    "persian": 0.05,
    "turkish": 0.20,
    "west_african": 0.30,
    "horn": 0.05,
    "slavic": 0.02,
    "albanian": 0.02,
    "caucasus": 0.02,
    "chinese": 0.0,
    "south_asian": 0.20,
    "southeast_asian": 0.25,
    "latin": 0.45,
    "english": 0.35,
}

#: Zipf exponent of given-name frequencies: larger = a few names dominate more
#: (Mohamed is the first name of roughly one Moroccan man in six).
ZIPF_EXPONENT: dict[str, float] = {"maghrebi": 1.1, "mashriq": 1.0, "chinese": 0.9}
#: Family names are far more diverse than given names (Chinese ones excepted).
FAMILY_ZIPF_EXPONENT: dict[str, float] = {"chinese": 1.0}
DEFAULT_FAMILY_ZIPF = 0.5

# Family names built from roots and affixes, appended to the listed pools (as less common
# names) so that different people rarely share a full name by chance more than they do in
# real registers.
_MAGHREBI_ROOTS = _split(
    "Alami, Amri, Baraka, Bekkali, Cherif, Filali, Ghazi, Haddaoui, Hassani, Hilali, Jabri, "
    "Jilali, Kabbaj, Khalfi, Khayati, Machichi, Malki, Marrakchi, Meknassi, Mernissi, Naciri, "
    "Rachidi, Rifi, Saadi, Sahraoui, Sebti, Slaoui, Soussi, Tounsi, Touzani, Wahbi, Zaidi, "
    "Zeroual, Ouarzazi, Berkani, Guerraoui, Haouari, Kettani, Laghzaoui, Mesbahi, Nejjari, "
    "Ouahabi, Qadiri, Riffi, Sbai, Tadlaoui, Yacoubi, Zemmouri, Fikri, Bakri"
)
_BERBER_ROOTS = _split(
    "Hammou, Brahim, Lahcen, Moussa, Idir, Yahia, Ahmed, Omar, Mbarek, Ouakrim, Bihi, Addi"
)
_SLAVIC_ROOTS = _split(
    "Петр, Иван, Сидор, Гончар, Кузьм, Бондар, Коваль, Ткач, Мельнич, Кравч, Савч, Марч, Павл, "
    "Левч, Гриц, Остап, Дорош, Клим, Панас, Мирошн, Сав, Тимош, Степан, Федор, Назар, Харч, "
    "Лукаш, Гаврил, Олеш, Прокоп"
)
_SLAVIC_SUFFIXES = ("енко", "ук", "ов", "ишин", "ович")
_LATIN_ROOTS = _split(
    "Acosta, Aguilar, Álvarez, Benítez, Cabrera, Campos, Cardona, Castillo, Contreras, Delgado, "
    "Domínguez, Escobar, Espinoza, Estrada, Fuentes, Gallardo, Giménez, Herrera, Ibarra, Lozano, "
    "Medina, Mejía, Molina, Montoya, Navarro, Ochoa, Orozco, Osorio, Pacheco, Paredes, Ríos, "
    "Rojas, Romero, Salazar, Sandoval, Suárez, Valencia, Vega, Zapata, Zúñiga, Barbosa, Carvalho, "
    "Gomes, Ribeiro, Rocha, Almeida, Nascimento, Araújo, Moreira, Cardoso"
)
_MASHRIQ_ROOTS = _split(
    "Jabouri, Obaidi, Saadi, Tamimi, Rubaie, Dulaimi, Shammari, Zubaidi, Khatib, Ahmad, Hassan, "
    "Masri, Kurdi, Hakim, Najjar, Sayed, Ani, Bayati, Hashimi, Jubouri, Karkhi, Mousawi, "
    "Qaisi, Rawi, Samarrai, Taie, Yasiri, Zaidi, Halabi, Homsi, Shami, Dimashqi, Husseini, Issa"
)
_PERSIAN_ROOTS = _split(
    "Ahmad, Mohammad, Hossein, Rahim, Karim, Hashem, Rezai, Nazar, Jafar, Amir, Hakim, Aziz, "
    "Haidar, Sadegh, Mousav, Noor, Rahman, Sharif, Ghafoor, Yousuf, Akbar, Safar, Ghorban, "
    "Mohsen, Taher, Kazem, Rostam, Habib, Samad, Jalal, Qader, Faiz, Sediq, Ebrahim, Hamid"
)
_PERSIAN_SUFFIXES = ("i", "zada", "yar", "khel", "pour")


def _extra_family_names(culture: str) -> list[str]:
    if culture == "maghrebi":
        return (
            [f"El {r}" for r in _MAGHREBI_ROOTS]
            + _MAGHREBI_ROOTS
            + [f"Ait {r}" for r in _BERBER_ROOTS]
            + [f"Ben {r}" for r in _BERBER_ROOTS]
        )
    if culture == "slavic":
        return [r.lower().capitalize() + s for s in _SLAVIC_SUFFIXES for r in _SLAVIC_ROOTS]
    if culture == "latin":
        return _LATIN_ROOTS
    if culture == "mashriq":
        return [f"Al-{r}" for r in _MASHRIQ_ROOTS] + _MASHRIQ_ROOTS
    if culture == "persian":
        return [r + s for s in _PERSIAN_SUFFIXES for r in _PERSIAN_ROOTS]
    return []


def pool(culture: str, kind: str) -> list[str]:
    """The entries of a pool, most common first (listed names, then built ones)."""
    entries = list(POOLS[culture][kind])
    if kind == "family":
        seen = set(entries)
        for name in _extra_family_names(culture):
            if name not in seen:
                seen.add(name)
                entries.append(name)
    return entries


#: Naming culture of each nationality; nationalities not listed use the region default.
CULTURE_OF_NATIONALITY: dict[str, str] = {
    **dict.fromkeys(["MAR", "DZA", "TUN", "LBY"], "maghrebi"),
    **dict.fromkeys(
        ["EGY", "IRQ", "SYR", "LBN", "PSE", "JOR", "YEM", "SDN", "KWT", "SAU"], "mashriq"
    ),
    **dict.fromkeys(["IRN", "AFG", "TJK"], "persian"),
    **dict.fromkeys(["TUR"], "turkish"),
    **dict.fromkeys(
        [
            "NGA",
            "GHA",
            "GIN",
            "SLE",
            "CMR",
            "CIV",
            "GMB",
            "SEN",
            "LBR",
            "MLI",
            "TGO",
            "BEN",
            "NER",
            "BFA",
        ],
        "west_african",
    ),
    **dict.fromkeys(["ERI", "ETH", "SOM", "DJI"], "horn"),
    **dict.fromkeys(["UKR", "RUS", "BLR", "MDA", "KAZ", "KGZ", "UZB", "SRB", "BGR"], "slavic"),
    **dict.fromkeys(["ALB", "XKX", "MKD"], "albanian"),
    **dict.fromkeys(["GEO", "ARM", "AZE"], "caucasus"),
    **dict.fromkeys(["CHN", "TWN", "HKG", "MNG"], "chinese"),
    **dict.fromkeys(["IND", "PAK", "BGD", "LKA", "NPL"], "south_asian"),
    **dict.fromkeys(["IDN", "PHL", "VNM", "THA", "MYS", "MMR"], "southeast_asian"),
    **dict.fromkeys(
        ["SUR", "BRA", "COL", "DOM", "VEN", "ECU", "PER", "BOL", "CUB", "MEX", "ARG", "CHL", "HTI"],
        "latin",
    ),
}

#: Culture by region for nationalities without their own entry.
CULTURE_OF_REGION: dict[str, str] = {
    "North Africa": "maghrebi",
    "Sub-Saharan Africa": "west_african",
    "Middle East": "mashriq",
    "Turkey": "turkish",
    "Eastern Europe": "slavic",
    "Asia": "south_asian",
    "Latin America and Caribbean": "latin",
    "Other": "english",
}

#: The built-in nationality mix of the hidden population (weights, normalised on use).
DEFAULT_NATIONALITY_WEIGHTS: dict[str, float] = {
    # North Africa ≈ 32%
    "MAR": 0.17,
    "DZA": 0.08,
    "TUN": 0.02,
    "LBY": 0.02,
    "EGY": 0.03,
    # Sub-Saharan Africa ≈ 14%
    "NGA": 0.03,
    "GHA": 0.025,
    "GIN": 0.015,
    "SLE": 0.01,
    "ERI": 0.015,
    "SOM": 0.01,
    "ETH": 0.01,
    "CMR": 0.01,
    "CIV": 0.005,
    "GMB": 0.005,
    "SDN": 0.01,
    # Middle East ≈ 8%
    "IRQ": 0.03,
    "SYR": 0.015,
    "IRN": 0.02,
    "LBN": 0.005,
    "PSE": 0.005,
    # Turkey
    "TUR": 0.05,
    # Eastern Europe ≈ 17%
    "UKR": 0.04,
    "RUS": 0.015,
    "ALB": 0.04,
    "GEO": 0.03,
    "ARM": 0.015,
    "AZE": 0.01,
    "MDA": 0.01,
    "BLR": 0.005,
    "MKD": 0.005,
    # Asia ≈ 15%
    "CHN": 0.04,
    "IND": 0.025,
    "PAK": 0.015,
    "BGD": 0.01,
    "AFG": 0.02,
    "IDN": 0.01,
    "PHL": 0.01,
    "VNM": 0.01,
    "LKA": 0.005,
    "NPL": 0.005,
    # Latin America and Caribbean ≈ 8%
    "SUR": 0.025,
    "BRA": 0.02,
    "COL": 0.01,
    "DOM": 0.01,
    "VEN": 0.005,
    "ECU": 0.005,
    "PER": 0.005,
    # Other ≈ 3%
    "USA": 0.015,
    "AUS": 0.005,
    "CAN": 0.005,
    "ZAF": 0.005,
}

# --------------------------------------------------------------------------------------
# Flattened tables the simulator indexes with numpy
# --------------------------------------------------------------------------------------
KINDS = ("male", "female", "family")


@dataclass(frozen=True)
class NameTables:
    """All pools flattened. An *entry* is a pool name; a *form* is one way to write it.

    Entry e of (culture, kind) has forms ``form_offset[e] … form_offset[e]+n_forms[e]-1``;
    the first is canonical, the others its spelling variants. ``form_text`` holds the
    written forms and ``form_compound`` the other compound writing (null if none).
    """

    cultures: tuple[str, ...]
    entry_start: dict[tuple[str, str], int]  # first entry id of (culture, kind)
    entry_cdf: dict[tuple[str, str], np.ndarray]  # Zipf CDF over the entries of (culture, kind)
    form_offset: np.ndarray
    n_forms: np.ndarray
    form_text: pl.Series
    form_compound: pl.Series
    form_has_compound: np.ndarray
    group_cdf: np.ndarray  # group g = culture·3 + kind: entry CDFs shifted by g, concatenated
    group_end: np.ndarray  # one past the last entry id of each group


@cache
def name_tables() -> NameTables:
    cultures = tuple(POOLS)
    entry_start: dict[tuple[str, str], int] = {}
    entry_cdf: dict[tuple[str, str], np.ndarray] = {}
    offsets: list[int] = []
    counts: list[int] = []
    texts: list[str] = []
    compounds: list[str | None] = []
    for culture in cultures:
        for kind in KINDS:
            entries = pool(culture, kind)
            entry_start[(culture, kind)] = len(offsets)
            ranks = np.arange(1, len(entries) + 1, dtype=np.float64)
            if kind == "family":
                exponent = FAMILY_ZIPF_EXPONENT.get(culture, DEFAULT_FAMILY_ZIPF)
            else:
                exponent = ZIPF_EXPONENT.get(culture, 0.9)
            weights = ranks**-exponent
            entry_cdf[(culture, kind)] = np.cumsum(weights) / weights.sum()
            for entry in entries:
                forms = [canonical_form(entry, culture), *spelling_variants(entry, culture)]
                offsets.append(len(texts))
                counts.append(len(forms))
                for form in forms:
                    texts.append(render(form))
                    alt = compound_alternative(form)
                    compounds.append(alt)
    compound_series = pl.Series("compound", compounds, dtype=pl.String)
    groups = [(c, k) for c in cultures for k in KINDS]
    group_cdf = np.concatenate([g + entry_cdf[key] for g, key in enumerate(groups)])
    group_cdf[np.cumsum([len(entry_cdf[key]) for key in groups]) - 1] = np.arange(
        1, len(groups) + 1
    )
    group_end = np.asarray(
        [entry_start[key] + len(entry_cdf[key]) for key in groups], dtype=np.int64
    )
    return NameTables(
        cultures=cultures,
        entry_start=entry_start,
        entry_cdf=entry_cdf,
        form_offset=np.asarray(offsets, dtype=np.int64),
        n_forms=np.asarray(counts, dtype=np.int64),
        form_text=pl.Series("name", texts, dtype=pl.String),
        form_compound=compound_series,
        form_has_compound=compound_series.is_not_null().to_numpy(),
        group_cdf=group_cdf,
        group_end=group_end,
    )
